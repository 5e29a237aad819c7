-- Fragment `refund`: give a generation's unit back exactly once (marker SET NX).
-- Counters are decremented only when they exist and are positive: a missing counter will
-- be re-seeded from Postgres, which no longer counts the failed generation.
local function decr_if_positive(key)
  local v = tonumber(redis.call('GET', key) or '0')
  if v > 0 then
    redis.call('DECR', key)
  end
end

-- hour_key: only for an admission that produced no generation (SPEC §9); a generation
-- that ran keeps its hourly unit (SPEC §2), so the worker passes nil.
local function refund_once(marker_key, month_key, full_key, is_full, marker_expireat_s, hour_key)
  if not redis.call('SET', marker_key, '1', 'NX', 'EXAT', marker_expireat_s) then
    return 0
  end
  decr_if_positive(month_key)
  if is_full == '1' then
    decr_if_positive(full_key)
  end
  if hour_key then
    decr_if_positive(hour_key)
  end
  return 1
end
