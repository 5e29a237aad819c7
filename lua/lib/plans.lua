-- Fragment `plans`: the plan table passed in ARGV by shared/plans.py (no numbers here),
-- built by shared/enforcement/scripts/admission.py `plan_table`: each plan by name, each
-- limit by name, integers or true/false:
--   basic{monthly=60,hourly=10,max_variants=1,full_allowed=false,full_cap=0,...};pro{...}
-- (full_cap -1: unlimited). Read with Lua's core string functions only: no library
-- (cjson) that a Redis-compatible server's Lua might not carry.
local function parse_plans(spec)
  local plans = {}
  for name, body in string.gmatch(spec, '([%w_]+){([^}]*)}') do
    local plan = {}
    for key, value in string.gmatch(body, '([%w_]+)=([^,]+)') do
      if value == 'true' then
        plan[key] = true
      elseif value == 'false' then
        plan[key] = false
      else
        plan[key] = tonumber(value)
      end
    end
    plans[name] = plan
  end
  return plans
end
