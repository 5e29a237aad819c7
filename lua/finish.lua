-- finish.lua — end a job: optional refund (exactly once) + release of both leases, and
-- optionally drop the request's pending idempotency record (abort after admission) and
-- publish the job's terminal status for its event streams (no SET of its own).
--
-- KEYS[1] user semaphore          KEYS[2] provider semaphore     KEYS[3] lease record
-- KEYS[4] refund marker           KEYS[5] monthly counter        KEYS[6] full-regen counter
-- KEYS[7] idempotency record      KEYS[8] regen cooldown (the draft's)
-- KEYS[9] hourly counter (the admission's hour; given back only on abort)
-- KEYS[10] credits, hash (the user's packs and grants)
-- KEYS[11] generation status: the event streams' key (Keys.generation_status); untouched
--          without a status
-- ARGV[1] lease id                ARGV[2] refund: "1" refund, "0" release only
-- ARGV[3] full regen: "1" a full regeneration, else "0"
-- ARGV[4] refund marker EXPIREAT, epoch s
-- ARGV[5] fingerprint: its pending record is dropped | "" (leave it)
-- ARGV[6] clear cooldown: "1" (abort of a regeneration that never ran), else "0"
-- ARGV[7] fence: claim number of the finishing delivery | "" (no fence); when a newer
--         claim than this one holds the lease, nothing is refunded or released
-- ARGV[8] refund hour: "1" give the hourly unit back too (abort: no generation ran), else "0"
-- ARGV[9] credit id: the credit that paid | "" (the monthly pool)
-- ARGV[10] status: the job's terminal status, published for its event streams (over any
--          earlier one) unless the fence refuses | "" (publish nothing)
-- ARGV[11] status TTL, ms
--
-- Reply: {refunded (0|1), members_released (count), idempotency_dropped (0|1)}

--#include semaphore
--#include refund
--#include idempotency

if lease_superseded(KEYS[3], ARGV[7]) then
  return {0, 0, 0}
end
local refunded = 0
if ARGV[2] == '1' then
  -- Only the hour this lease charged (its record says which): nothing else is given back.
  local hour_key = nil
  if ARGV[8] == '1' and redis.call('HGET', KEYS[3], 'hour_key') == KEYS[9] then
    hour_key = KEYS[9]
  end
  refunded = refund_once(KEYS[4], KEYS[5], KEYS[6], ARGV[3], ARGV[4], hour_key, KEYS[10],
    ARGV[9])
end
local released = release_lease({KEYS[1], KEYS[2]}, KEYS[3], ARGV[1])
local dropped = 0
if ARGV[5] ~= '' then
  dropped = idem_drop_pending(KEYS[7], ARGV[5])
end
if ARGV[6] == '1' then
  redis.call('DEL', KEYS[8])
end
if ARGV[10] ~= '' then
  redis.call('SET', KEYS[11], ARGV[10], 'PX', ARGV[11])
end
return {refunded, released, dropped}
