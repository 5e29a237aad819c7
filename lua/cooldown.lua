-- cooldown.lua — start a cooldown unless one is running.
--
-- KEYS[1] cooldown marker, value = until epoch ms (script time)
-- ARGV[1] time offset, ms     ARGV[2] cooldown, ms
--
-- Reply: {1, 0} started | {0, remaining_ms}

--#include clock
--#include cooldown

local now = now_ms(ARGV[1])
local running, left = cooldown_running(KEYS[1], now)
if running then
  return {0, left}
end
cooldown_start(KEYS[1], now, tonumber(ARGV[2]))
return {1, 0}
