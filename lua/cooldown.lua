-- cooldown.lua — start a cooldown unless one is running.
--
-- KEYS[1] cooldown marker, value = until epoch ms (script time)
-- ARGV[1] time offset, ms     ARGV[2] cooldown, ms
--
-- Reply: {1, 0} started | {0, remaining_ms}

--#include clock

local now, cooldown = now_ms(ARGV[1]), tonumber(ARGV[2])
local until_ms = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > now then
  return {0, until_ms - now}
end
if cooldown > 0 then
  redis.call('SET', KEYS[1], now + cooldown, 'PX', cooldown)
end
return {1, 0}
