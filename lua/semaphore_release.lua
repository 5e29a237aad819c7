-- semaphore_release.lua — remove a lease from its semaphores and drop its record. Idempotent.
--
-- KEYS[1]    lease record, hash
-- KEYS[2..n] semaphores, zsets lease id -> expiry epoch ms
-- ARGV[1]    lease id
--
-- Reply: members removed, count (0 when already released)

--#include semaphore

local sems = {}
for i = 2, #KEYS do
  sems[#sems + 1] = KEYS[i]
end
return release_lease(sems, KEYS[1], ARGV[1])
