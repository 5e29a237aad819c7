-- circuit.lua — a provider's circuit breaker, shared by every instance: admit a call, or record its outcome.
--
-- KEYS[1] circuit state, hash: state (closed | open | half_open), opened_at ms, trial, trial_until ms
-- KEYS[2] circuit failures, zset: failure id -> when, ms
-- ARGV[1] time offset, ms (0 in production; tests move script time)
-- ARGV[2] op: admit | success | failure | peek
-- ARGV[3] caller: the call's id (the trial holder; a failure's member)
-- ARGV[4] failures to open
-- ARGV[5] window, ms
-- ARGV[6] cooldown, ms
-- ARGV[7] trial TTL, ms: a trial that never reports frees the half-open state after this
--
-- Reply: {verdict, state after, changed (0 | 1)}; verdict: allow | trial | deny (admit),
-- recorded (success, failure), state (peek: reads only). Closed allows; open denies until the cool-down ends, then the
-- first caller becomes the one trial (half_open, everyone else denied); the trial's success
-- closes the circuit (failures forgotten), its failure opens it again from now.

--#include clock

local now = now_ms(ARGV[1])
local op, caller = ARGV[2], ARGV[3]
local threshold, window = tonumber(ARGV[4]), tonumber(ARGV[5])
local cooldown, trial_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'

local function open_now()
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'trial', '', 'trial_until', 0)
  redis.call('DEL', KEYS[2])
end

if op == 'peek' then
  return {'state', state, 0}
end

if op == 'admit' then
  if state == 'closed' then
    return {'allow', 'closed', 0}
  end
  if state == 'open' then
    if now < tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') + cooldown then
      return {'deny', 'open', 0}
    end
  elseif now < tonumber(redis.call('HGET', KEYS[1], 'trial_until') or '0') then
    return {'deny', 'half_open', 0}
  end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'trial', caller, 'trial_until', now + trial_ttl)
  return {'trial', 'half_open', 1}
end

local is_trial = state == 'half_open' and redis.call('HGET', KEYS[1], 'trial') == caller
if op == 'success' then
  if is_trial then
    redis.call('DEL', KEYS[1], KEYS[2])
    return {'recorded', 'closed', 1}
  end
  return {'recorded', state, 0}
end

-- failure
if is_trial then
  open_now()
  return {'recorded', 'open', 1}
end
if state ~= 'closed' then
  return {'recorded', state, 0}
end
redis.call('ZADD', KEYS[2], now, caller)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('PEXPIRE', KEYS[2], window)
if redis.call('ZCARD', KEYS[2]) >= threshold then
  open_now()
  return {'recorded', 'open', 1}
end
return {'recorded', 'closed', 0}
