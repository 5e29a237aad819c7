-- Fragment `counters`: usage counters seeded from Postgres (the truth) when missing.
-- Returns the counter value, or nil when it is missing and no seed was passed.
-- SET NX: a concurrent seeder may win, with the same count from the same ledger.
local function counter_read(key, seed, expireat_s)
  local v = redis.call('GET', key)
  if v then
    return tonumber(v)
  end
  if seed == nil or seed == '' then
    return nil
  end
  redis.call('SET', key, seed, 'NX', 'EXAT', expireat_s)
  return tonumber(redis.call('GET', key))
end

-- Charge n units; a counter created by this write gets its period expiry.
local function counter_charge(key, n, expireat_s)
  local v = redis.call('INCRBY', key, n)
  if redis.call('TTL', key) == -1 then
    redis.call('EXPIREAT', key, expireat_s)
  end
  return v
end

-- True when charging n more units would pass `limit` (-1 = unlimited).
local function counter_exceeds(used, n, limit)
  return limit >= 0 and used + n > limit
end

-- "month,hour,full" — the counters the caller must seed: of the {name, value} pairs given,
-- in order, each name whose value is nil (the names are the Truth fields in Python).
local function missing_counters(named)
  local missing = {}
  for _, pair in ipairs(named) do
    if pair[2] == nil then
      missing[#missing + 1] = pair[1]
    end
  end
  return table.concat(missing, ',')
end
