-- counter_with_limit.lua — charge n units against a limit, or refuse and change nothing.
--
-- KEYS[1] counter, count (monthly pool, hourly burst or full-regen cap)
-- ARGV[1] limit, count (-1 = unlimited)
-- ARGV[2] n, units to charge
-- ARGV[3] expireat, epoch s: end of the period (+ grace)
-- ARGV[4] seed, count | "" (when the counter is missing: seeded from Postgres)
--
-- Reply: {"ok", used_after, limit} | {"refused", used, limit} | {"need_seed", 0, limit}

--#include counters

local limit, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = counter_read(KEYS[1], ARGV[4], ARGV[3])
if not used then
  return {'need_seed', 0, limit}
end
if counter_exceeds(used, n, limit) then
  return {'refused', used, limit}
end
return {'ok', counter_charge(KEYS[1], n, ARGV[3]), limit}
