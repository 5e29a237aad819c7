-- admission.lua — one atomic admission decision (DESIGN §2): all checks read-only, then
-- every write, or nothing (a refusal only fills the plan cache / seeds missing counters).
--
-- KEYS[1]  idempotency record, hash            {p}:idem:{u}:{scope}:{idem_key}
-- KEYS[2]  plan cache: base plan | "none"      {p}:user:{u}:plan_effective
-- KEYS[3]  plan cache: boost expiry, epoch ms  {p}:boost:{u}:pro_until
-- KEYS[4]  monthly counter, count              {p}:usage:{u}:gen_used:{yyyymm}
-- KEYS[5]  hourly counter, count               {p}:burst:{u}:gen_hour:{yyyymmddhh}
-- KEYS[6]  full-regen counter, count           {p}:usage:{u}:full_regen_used:{yyyymm}
-- KEYS[7]  regen cooldown, value = until ms    {p}:cooldown:{u}:regen:{draft_id}
-- KEYS[8]  user semaphore, zset id -> exp ms   {p}:conc:{u}:leases
-- KEYS[9]  provider semaphore, same shape      {p}:conc:provider:{provider}:{model}:{lane}
-- KEYS[10] lease record, hash                  {p}:conc:lease:{lease_id}
-- KEYS[11] credits, hash (packs and grants)     {p}:credits:{u}
--
-- ARGV[1]  time offset, ms (0 in production; tests move script time forward)
-- ARGV[2]  scope: create | regen_targeted | regen_full
-- ARGV[3]  lease id (= generation id)
-- ARGV[4]  variants requested, count
-- ARGV[5]  request fingerprint ("" = no Idempotency-Key)
-- ARGV[6]  plan table, JSON: plans by name, each limit by name (see lib/plans.lua)
-- ARGV[7]  plan fill: base plan | "none" | "" (not loaded)
-- ARGV[8]  boost fill: expiry epoch ms | "0" | "" (not loaded)
-- ARGV[9]  plan cache TTL, s
-- ARGV[10] monthly seed, count | ""      ARGV[11] hourly seed | ""     ARGV[12] full seed | ""
-- ARGV[13] monthly counters EXPIREAT, epoch s        ARGV[14] hourly counter EXPIREAT, epoch s
-- ARGV[15] lease TTL, ms
-- ARGV[16] provider cap, leases
-- ARGV[17] idempotency record TTL, s
-- ARGV[18] credits seed: "-" | "id:expires_ms:limit:used:kind;..." | "" (not loaded)
-- ARGV[19] notice marks, percent of the monthly pool, comma-separated (e.g. "80,100")
-- ARGV[20] low credit mark, units left in credits
--
-- Reply:
--   {"admitted", plan, month_used, month_limit, hour_used, hour_limit, full_used, full_limit,
--    lease_expires_ms, now_ms, source, credits_left, notices}
--   (source: "pool" or the id of the credit charged; credits_left: units left in
--    unexpired credits, -1 when the pool paid and the credits were not read; notices:
--    the thresholds this very unit crossed, "pool_<pct>" and/or "credits_low", comma-
--    separated, "" none — counts move one unit per call, so exactly one admission sees
--    each crossing)
--   {"refused", code, limit, used, retry_after_ms}   (retry_after_ms 0: the caller derives it)
--   {"replay", status, body, headers_json} | {"in_progress"} | {"key_reused"}
--   {"need_plan", missing_counters_csv} | {"need_seed", missing_counters_csv}

--#include clock
--#include plans
--#include plan_cache
--#include counters
--#include cooldown
--#include semaphore
--#include idempotency
--#include credits

local scope, lease_id, fp = ARGV[2], ARGV[3], ARGV[5]
local is_full = scope == 'regen_full'
local is_regen = scope ~= 'create'
local now = now_ms(ARGV[1])

-- (1) idempotency
if fp ~= '' then
  local settled = idem_lookup(KEYS[1], fp)
  if settled then
    return settled
  end
end

-- (2) plan and (3) counters: one trip tells the caller everything it must load
local base, boost_ms = plan_cache_read(KEYS[2], KEYS[3], ARGV[7], ARGV[8], ARGV[9])
local month = counter_read(KEYS[4], ARGV[10], ARGV[13])
local hour = counter_read(KEYS[5], ARGV[11], ARGV[14])
local full = 0
if is_full then
  full = counter_read(KEYS[6], ARGV[12], ARGV[13])
end
local missing = missing_counters({{'month', month}, {'hour', hour}, {'full', full}})
if not base then
  return {'need_plan', missing}
end
if missing ~= '' then
  return {'need_seed', missing}
end

local plan_name = effective_plan(base, boost_ms, now)
local plan = parse_plans(ARGV[6])[plan_name]
if not plan then
  return {'refused', 'SUBSCRIPTION_REQUIRED', 0, 0, 0}
end
local variants = tonumber(ARGV[4])
if variants > plan.max_variants then
  return {'refused', 'PLAN_FEATURE_UNAVAILABLE', plan.max_variants, variants, 0}
end
if is_full and not plan.full_allowed then
  return {'refused', 'PLAN_FEATURE_UNAVAILABLE', 0, 0, 0}
end

-- A retried call for a lease already admitted (a lost reply) must not charge twice.
if redis.call('EXISTS', KEYS[10]) == 1 then
  local exp = tonumber(redis.call('HGET', KEYS[10], 'expires_ms') or '0')
  local paid = redis.call('HGET', KEYS[10], 'source') or 'pool'
  return {'admitted', plan_name, month, plan.monthly, hour, plan.hourly, full, plan.full_cap,
    exp, now, paid, -1, ''}
end

-- The pool first; once it is spent, the credit expiring first (the credits hash is read
-- only then, so a user within the pool never needs it).
local source = 'pool'
if counter_exceeds(month, 1, plan.monthly) then
  if not credits_ready(KEYS[11], ARGV[18]) then
    return {'need_seed', 'credits'}
  end
  source = credit_pick(KEYS[11], now)
  if not source then
    return {'refused', 'MONTHLY_QUOTA_EXCEEDED', plan.monthly, month, 0}
  end
end
if counter_exceeds(hour, 1, plan.hourly) then
  return {'refused', 'HOURLY_LIMIT_EXCEEDED', plan.hourly, hour, 0}
end
if is_full and counter_exceeds(full, 1, plan.full_cap) then
  return {'refused', 'FULL_REGEN_CAP_EXCEEDED', plan.full_cap, full, 0}
end
if is_regen then
  local running, left = cooldown_running(KEYS[7], now)
  if running then
    return {'refused', 'COOLDOWN_ACTIVE', plan.cooldown_ms, 0, left}
  end
end

-- (4) semaphores
local user_room, user_in_use = sem_room(KEYS[8], now, plan.concurrency)
if not user_room then
  return {'refused', 'CONCURRENCY_LIMIT', plan.concurrency, user_in_use, 0}
end
local cap = tonumber(ARGV[16])
local provider_room, provider_in_use = sem_room(KEYS[9], now, cap)
if not provider_room then
  return {'refused', 'PROVIDER_BUSY', cap, provider_in_use, 0}
end

-- (5) every write
local credits_left_after = -1
if source == 'pool' then
  month = counter_charge(KEYS[4], 1, ARGV[13])
else
  credit_charge(KEYS[11], source)
  credits_left_after = credits_left(KEYS[11], now)
end
hour = counter_charge(KEYS[5], 1, ARGV[14])
if is_full then
  full = counter_charge(KEYS[6], 1, ARGV[13])
end
if is_regen then
  cooldown_start(KEYS[7], now, plan.cooldown_ms)
end
local lease_ttl = tonumber(ARGV[15])
local expires = now + lease_ttl
sem_add(KEYS[8], lease_id, expires, now)
sem_add(KEYS[9], lease_id, expires, now)
-- The lease record holds only what a later script reads: expires_ms and source (a retried
-- admission of this lease answers with them) and hour_key (an abort gives back the hour it charged).
-- Every other key a release or refund touches is passed in KEYS (Upstash locks them).
redis.call('HSET', KEYS[10], 'hour_key', KEYS[5], 'expires_ms', expires, 'source', source)
-- It outlives the lease by an hour: a delivery paused past the lease's end must still
-- find the newer claim's attempt (refresh_lease stores it) and stay fenced out.
redis.call('PEXPIRE', KEYS[10], lease_ttl + 3600000)
if fp ~= '' then
  idem_mark_pending(KEYS[1], fp, ARGV[17])
end
local notices = {}
if source == 'pool' then
  for pct in string.gmatch(ARGV[19], '%d+') do
    local mark = math.ceil(plan.monthly * tonumber(pct) / 100)
    if month == mark then
      notices[#notices + 1] = 'pool_' .. pct
    end
  end
elseif credits_left_after == tonumber(ARGV[20]) then
  notices[#notices + 1] = 'credits_low'
end
return {'admitted', plan_name, month, plan.monthly, hour, plan.hourly, full, plan.full_cap,
  expires, now, source, credits_left_after, table.concat(notices, ',')}
