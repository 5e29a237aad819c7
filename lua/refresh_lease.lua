-- refresh_lease.lua — extend a lease still held; re-acquire an expired one within the caps.
-- Only this lease id's own members are ever moved: an expired lease never extends a slot
-- that someone else took meanwhile (its stale member is replaced only if there is room).
--
-- KEYS[1] user semaphore      KEYS[2] provider semaphore      KEYS[3] lease record
-- ARGV[1] time offset, ms     ARGV[2] lease id                ARGV[3] lease TTL, ms
-- ARGV[4] user concurrency limit, slots                       ARGV[5] provider cap, slots
-- ARGV[6] fence: claim number of the refreshing delivery | "" (no fence); stored in the record
--
-- Reply: {"held", expires_ms} | {"reacquired", expires_ms} | {"busy", code, limit, in_use}
--        | {"superseded"} (a newer claim owns the lease; nothing written)

--#include clock
--#include semaphore

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
  local user_in_use = sem_live(KEYS[1], now)
  if not held_user and user_in_use >= limit then
    return {'busy', 'CONCURRENCY_LIMIT', limit, user_in_use}
  end
  local provider_in_use = sem_live(KEYS[2], now)
  if not held_provider and provider_in_use >= cap then
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
return {status, expires}
