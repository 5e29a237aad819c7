-- Fragment `semaphore`: sorted sets of lease ids scored by expiry (epoch ms, script time).

-- Live (unexpired) members; read-only, so a refusal writes nothing.
local function sem_live(key, now)
  return redis.call('ZCOUNT', key, '(' .. now, '+inf')
end

-- Whether one more member fits under `limit`, and the live members; read-only.
local function sem_room(key, now, limit)
  local in_use = sem_live(key, now)
  return in_use < limit, in_use
end

-- Add or move a member; expired members are dropped on every acquire, and the set itself
-- expires after its last member so idle users leave nothing behind.
local function sem_add(key, member, expires_ms, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, expires_ms, member)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', key, math.max(1, tonumber(last[2]) - now + 1000))
end

-- True when a newer claim than `attempt` (the worker's claim number; "" = no fence) owns
-- the lease: a paused, taken-over delivery must neither release nor refresh it. A record
-- without an attempt (admitted, never refreshed by a claim) counts as claim 0.
local function lease_superseded(lease_key, attempt)
  if attempt == nil or attempt == '' then
    return false
  end
  return tonumber(redis.call('HGET', lease_key, 'attempt') or '0') > tonumber(attempt)
end

-- Remove a lease from every semaphore it may hold and drop its record. Idempotent.
local function release_lease(sem_keys, lease_key, member)
  local removed = 0
  for _, key in ipairs(sem_keys) do
    removed = removed + redis.call('ZREM', key, member)
  end
  redis.call('DEL', lease_key)
  return removed
end
