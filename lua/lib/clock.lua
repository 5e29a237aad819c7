-- Fragment `clock`: script time in epoch milliseconds.
-- Redis 6 must replicate effects (not the script text) when TIME is followed by writes;
-- Redis 7 always does and keeps replicate_commands() only as a deprecated no-op.
if redis.replicate_commands then
  redis.replicate_commands()
end

-- Redis TIME plus an offset (ms): 0 in production; tests move script time forward.
local function now_ms(offset_ms)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + (tonumber(offset_ms) or 0)
end
