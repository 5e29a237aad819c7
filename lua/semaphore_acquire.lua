-- semaphore_acquire.lua — take one slot of a lease semaphore, or refuse and change nothing.
--
-- KEYS[1] semaphore, zset lease id -> expiry epoch ms
-- ARGV[1] time offset, ms    ARGV[2] lease id    ARGV[3] limit, slots    ARGV[4] lease TTL, ms
--
-- Reply: {1, in_use_after, expires_ms} | {0, in_use, retry_after_ms (until the first expiry)}

--#include clock
--#include semaphore

local now = now_ms(ARGV[1])
local member, limit, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local held = tonumber(redis.call('ZSCORE', KEYS[1], member) or '0')
if held > now then
  return {1, sem_live(KEYS[1], now), held}
end
local room, in_use = sem_room(KEYS[1], now, limit)
if not room then
  local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return {0, in_use, first[2] and (tonumber(first[2]) - now) or 0}
end
sem_add(KEYS[1], member, now + ttl, now)
return {1, in_use + 1, now + ttl}
