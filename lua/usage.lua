-- usage.lua — the caller's usage in one read (GET /v1/usage); writes only cache fills/seeds.
--
-- KEYS[1] plan cache: base plan | "none"       {p}:user:{u}:plan_effective
-- KEYS[2] plan cache: boost expiry, epoch ms   {p}:boost:{u}:pro_until
-- KEYS[3] monthly counter, count               {p}:usage:{u}:gen_used:{yyyymm}
-- KEYS[4] hourly counter, count                {p}:burst:{u}:gen_hour:{yyyymmddhh}
-- KEYS[5] full-regen counter, count            {p}:usage:{u}:full_regen_used:{yyyymm}
-- KEYS[6] user semaphore, zset id -> exp ms    {p}:conc:{u}:leases
-- KEYS[7] credits, hash (packs and grants)     {p}:credits:{u}
--
-- ARGV[1] time offset, ms          ARGV[2] plan fill | ""     ARGV[3] boost fill, ms | ""
-- ARGV[4] plan cache TTL, s        ARGV[5] monthly seed | ""  ARGV[6] hourly seed | ""
-- ARGV[7] full seed | ""           ARGV[8] monthly EXPIREAT, epoch s
-- ARGV[9] hourly EXPIREAT, epoch s
-- ARGV[10] credits seed: "-" | "id:expires_ms:limit:used:kind;..." | "" (not loaded)
--
-- Reply: {"usage", base_plan, boost_ms, month_used, hour_used, full_used, in_use, now_ms,
--         credits "id:expires_ms:limit:used:kind;..." ("" none)}
--      | {"need_plan", missing_counters_csv} | {"need_seed", missing_counters_csv}

--#include clock
--#include plan_cache
--#include counters
--#include semaphore
--#include credits

local now = now_ms(ARGV[1])
local base, boost_ms = plan_cache_read(KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4])
local month = counter_read(KEYS[3], ARGV[5], ARGV[8])
local hour = counter_read(KEYS[4], ARGV[6], ARGV[9])
local full = counter_read(KEYS[5], ARGV[7], ARGV[8])
local missing = missing_counters({{'month', month}, {'hour', hour}, {'full', full}})
if not credits_ready(KEYS[7], ARGV[10]) then
  missing = missing == '' and 'credits' or (missing .. ',credits')
end
if not base then
  return {'need_plan', missing}
end
if missing ~= '' then
  return {'need_seed', missing}
end
return {'usage', base, boost_ms, month, hour, full, sem_live(KEYS[6], now), now,
  credits_encode(KEYS[7])}
