-- Fragment `plan_cache`: the cached base plan ("none" = no subscription) and boost expiry (ms, 0).
-- Both keys are written together with one TTL; either one missing means "not cached".
-- Returns base, boost_ms — or nil when not cached and no fill was passed in ARGV.
local function plan_cache_read(plan_key, boost_key, fill_plan, fill_boost_ms, ttl_s)
  local base = redis.call('GET', plan_key)
  local boost = redis.call('GET', boost_key)
  if base and boost then
    return base, tonumber(boost)
  end
  if fill_plan == '' or fill_boost_ms == '' then
    return nil, nil
  end
  redis.call('SET', plan_key, fill_plan, 'EX', ttl_s)
  redis.call('SET', boost_key, fill_boost_ms, 'EX', ttl_s)
  return fill_plan, tonumber(fill_boost_ms)
end

-- SPEC §2: while script time < boost expiry the effective plan is pro (never a downgrade);
-- recomputed on every call, so a cached boost stops applying the moment it expires.
local function effective_plan(base, boost_ms, now)
  if boost_ms > now then
    return 'pro'
  end
  return base
end
