-- semaphore_release.lua — remove a lease from its semaphores and drop its record. Idempotent.
--
-- KEYS[1]    lease record, hash
-- KEYS[2..n] semaphores, zsets lease id -> expiry epoch ms
-- ARGV[1]    lease id
-- ARGV[2]    fence: claim number of the releasing delivery | "" (no fence); absent = ""
--
-- Reply: members removed, count (0 when already released or held by a newer claim)

--#include semaphore

if lease_superseded(KEYS[1], ARGV[2]) then
  return 0
end
local sems = {}
for i = 2, #KEYS do
  sems[#sems + 1] = KEYS[i]
end
return release_lease(sems, KEYS[1], ARGV[1])
