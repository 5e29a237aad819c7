-- Fragment `cooldown`: a marker whose value is its "until" time (script time, epoch ms);
-- script time decides, PX only collects the key afterwards.

-- Whether a cooldown runs at `now` (it is over at its "until" millisecond), and the
-- milliseconds left of it.
local function cooldown_running(key, now)
  local until_ms = tonumber(redis.call('GET', key) or '0')
  return until_ms > now, until_ms - now
end

-- Start a cooldown of `ms` (none when `ms` is 0).
local function cooldown_start(key, now, ms)
  if ms > 0 then
    redis.call('SET', key, now + ms, 'PX', ms)
  end
end
