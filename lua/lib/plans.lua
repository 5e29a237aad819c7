-- Fragment `plans`: the plan table passed in ARGV by shared/plans.py (no numbers here),
-- built by shared/enforcement/scripts/admission.py `plan_table`: a JSON object of plans by
-- name, each limit by name:
--   {"<plan>": {"monthly": n, "hourly": n, "max_variants": n, "full_allowed": true|false,
--               "full_cap": n (-1 unlimited), "concurrency": n, "cooldown_ms": n}, ...}
-- cjson is part of Redis's Lua (since 2.6) and of Upstash's.
local function parse_plans(spec)
  return cjson.decode(spec)
end
