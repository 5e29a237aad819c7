-- Fragment `credits`: one-off units outside the monthly pool (packs and support grants).
-- One hash per user, a cache of Postgres (the credits table and the generations each paid):
--   "_"        seeded marker (the hash exists even when the user has no credit)
--   "c:<id>"   "expires_ms:limit:kind"   (limit = units still granted; kind pack|grant)
--   "u:<id>"   units charged to the credit
-- The seed (ARGV) is "-" (none) or "id:expires_ms:limit:used:kind;..." from Postgres.

-- True when the hash is usable (written from ``seed`` if missing and a seed was passed).
local function credits_ready(key, seed)
  if redis.call('HGET', key, '_') then
    return true
  end
  if seed == nil or seed == '' then
    return false
  end
  redis.call('HSET', key, '_', '1')
  for id, exp, lim, used, kind in string.gmatch(seed, '([%w%-]+):(%d+):(%d+):(%d+):(%a+)') do
    redis.call('HSET', key, 'c:' .. id, exp .. ':' .. lim .. ':' .. kind, 'u:' .. id, used)
  end
  return true
end

-- Every credit as {id, expires_ms, limit, used, kind}, in no particular order.
local function credits_all(key)
  local flat = redis.call('HGETALL', key)
  local meta, used = {}, {}
  for i = 1, #flat, 2 do
    local field, value = flat[i], flat[i + 1]
    local tag, id = string.sub(field, 1, 2), string.sub(field, 3)
    if tag == 'c:' then
      meta[id] = value
    elseif tag == 'u:' then
      used[id] = tonumber(value)
    end
  end
  local out = {}
  for id, value in pairs(meta) do
    local exp, lim, kind = string.match(value, '^(%d+):(%d+):(%a+)$')
    out[#out + 1] = {id, tonumber(exp), tonumber(lim), used[id] or 0, kind}
  end
  return out
end

-- The credit the next unit comes from: not expired at ``now``, not used up, the earliest
-- expiry first (ties by id); nil when none.
local function credit_pick(key, now)
  local best, best_exp = nil, nil
  for _, c in ipairs(credits_all(key)) do
    if c[2] > now and c[4] < c[3] then
      if best == nil or c[2] < best_exp or (c[2] == best_exp and c[1] < best) then
        best, best_exp = c[1], c[2]
      end
    end
  end
  return best
end

-- Units left in credits not expired at ``now``.
local function credits_left(key, now)
  local left = 0
  for _, c in ipairs(credits_all(key)) do
    if c[2] > now and c[4] < c[3] then
      left = left + c[3] - c[4]
    end
  end
  return left
end

-- "id:expires_ms:limit:used:kind;..." for the usage reply ("" when none).
local function credits_encode(key)
  local parts = {}
  for _, c in ipairs(credits_all(key)) do
    parts[#parts + 1] = table.concat(c, ':')
  end
  table.sort(parts)
  return table.concat(parts, ';')
end

local function credit_charge(key, id)
  redis.call('HINCRBY', key, 'u:' .. id, 1)
end
