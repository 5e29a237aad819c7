-- refresh_lease.lua — extend a lease still held; re-acquire an expired one within the caps.
-- Only this lease id's own members are ever moved: an expired lease never extends a slot
-- that someone else took meanwhile (its stale member is replaced only if there is room).
-- First, the signed delivery's token is accepted once (SET NX): the worker's first script
-- call doubles as the replay check, so the signature costs no round trip of its own.
-- Last, the job's "running" status is published for its event streams (no SET of its own).
--
-- KEYS[1] user semaphore      KEYS[2] provider semaphore      KEYS[3] lease record
-- KEYS[4] delivery token: the QStash jti key (Keys.qstash_token); untouched without a TTL
-- KEYS[5] generation status: the event streams' key (Keys.generation_status); untouched
--         without a status
-- ARGV[1] time offset, ms     ARGV[2] lease id                ARGV[3] lease TTL, ms
-- ARGV[4] user concurrency limit, slots                       ARGV[5] provider cap, slots
-- ARGV[6] fence: claim number of the refreshing delivery (a queued job: the number before
--         its claim) | "" (no fence); stored in the record
-- ARGV[7] token TTL, ms: how long the jti is remembered | "" (no token to record)
-- ARGV[8] status: "running", published once the slots are held, and only if no status
--         was published before (SET NX: queued is never published and every later one is
--         terminal, so the streams' hint never goes back) | "" (publish nothing)
-- ARGV[9] status TTL, ms
--
-- Reply: {"held", expires_ms} | {"reacquired", expires_ms} | {"busy", code, limit, in_use}
--        | {"superseded"} (a newer claim owns the lease; nothing written but the token)
--        | {"replayed"} (the token was used before; nothing written at all)

--#include clock
--#include semaphore

-- The token is remembered whatever follows (busy, superseded), as a check made before
-- the script would have: QStash signs every attempt afresh, only a replay repeats a jti.
if ARGV[7] ~= '' and not redis.call('SET', KEYS[4], '1', 'PX', ARGV[7], 'NX') then
  return {'replayed'}
end
if lease_superseded(KEYS[3], ARGV[6]) then
  return {'superseded'}
end
local now = now_ms(ARGV[1])
local id, ttl = ARGV[2], tonumber(ARGV[3])
local expires = now + ttl
local held_user = tonumber(redis.call('ZSCORE', KEYS[1], id) or '0') > now
local held_provider = tonumber(redis.call('ZSCORE', KEYS[2], id) or '0') > now
local status = 'held'
if not (held_user and held_provider) then
  status = 'reacquired'
  local limit, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
  local user_room, user_in_use = sem_room(KEYS[1], now, limit)
  if not held_user and not user_room then
    return {'busy', 'CONCURRENCY_LIMIT', limit, user_in_use}
  end
  local provider_room, provider_in_use = sem_room(KEYS[2], now, cap)
  if not held_provider and not provider_room then
    return {'busy', 'PROVIDER_BUSY', cap, provider_in_use}
  end
end
sem_add(KEYS[1], id, expires, now)
sem_add(KEYS[2], id, expires, now)
redis.call('HSET', KEYS[3], 'expires_ms', expires)
if ARGV[6] ~= nil and ARGV[6] ~= '' then
  redis.call('HSET', KEYS[3], 'attempt', ARGV[6])
end
redis.call('PEXPIRE', KEYS[3], ttl + 3600000)
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[5], ARGV[8], 'PX', ARGV[9], 'NX')
end
return {status, expires}
