-- Fragment `plans`: the plan table passed in ARGV by shared/plans.py (no numbers here).
-- Format: "name:monthly:hourly:max_variants:full_allowed(0|1):full_cap(-1 unlimited):concurrency:cooldown_ms;..."
local function parse_plans(spec)
  local plans = {}
  local pattern = '([%w_]+):(%-?%d+):(%-?%d+):(%-?%d+):([01]):(%-?%d+):(%-?%d+):(%-?%d+)'
  for name, m, h, v, fa, fc, c, cd in string.gmatch(spec, pattern) do
    plans[name] = {
      monthly = tonumber(m), hourly = tonumber(h), max_variants = tonumber(v),
      full_allowed = fa == '1', full_cap = tonumber(fc), concurrency = tonumber(c),
      cooldown_ms = tonumber(cd),
    }
  end
  return plans
end
