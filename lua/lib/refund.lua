-- Fragment `refund`: give a generation's unit back exactly once (marker SET NX), to the
-- source that paid it: the monthly pool or one credit (pack or grant).
-- Counters are decremented only when they exist and are positive: a missing counter will
-- be re-seeded from Postgres, which no longer counts the failed generation.
local function decr_if_positive(key)
  local v = tonumber(redis.call('GET', key) or '0')
  if v > 0 then
    redis.call('DECR', key)
  end
end

-- The unit goes back where it came from: the credit that paid (credit_id, a field of the
-- credits hash; a hash that is missing will be re-seeded from Postgres) or the month.
local function give_back(month_key, credits_key, credit_id)
  if credit_id == nil or credit_id == '' then
    decr_if_positive(month_key)
    return
  end
  local used = tonumber(redis.call('HGET', credits_key, 'u:' .. credit_id) or '0')
  if used > 0 then
    redis.call('HINCRBY', credits_key, 'u:' .. credit_id, -1)
  end
end

-- hour_key: only for an admission that produced no generation (SPEC §9); a generation
-- that ran keeps its hourly unit (SPEC §2), so the worker passes nil.
-- credits_key, credit_id: the source that paid ('' credit_id = the monthly pool).
local function refund_once(marker_key, month_key, full_key, is_full, marker_expireat_s, hour_key,
                           credits_key, credit_id)
  if not redis.call('SET', marker_key, '1', 'NX', 'EXAT', marker_expireat_s) then
    return 0
  end
  give_back(month_key, credits_key, credit_id)
  if is_full == '1' then
    decr_if_positive(full_key)
  end
  if hour_key then
    decr_if_positive(hour_key)
  end
  return 1
end
