-- Fragment `cooldown`: a marker whose value is its "until" time (script time, epoch ms);
-- script time decides, PX only collects the key afterwards.

-- Milliseconds left of a running cooldown, 0 when none runs.
local function cooldown_left(key, now)
  local until_ms = tonumber(redis.call('GET', key) or '0')
  if until_ms > now then
    return until_ms - now
  end
  return 0
end

-- Start a cooldown of `ms` (none when `ms` is 0).
local function cooldown_start(key, now, ms)
  if ms > 0 then
    redis.call('SET', key, now + ms, 'PX', ms)
  end
end
