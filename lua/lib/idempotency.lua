-- Fragment `idempotency`: records are hashes {state=pending|done, fp, status, body, headers}.

-- nil when the request may proceed, else the reply that settles it.
local function idem_lookup(key, fp)
  local rec = redis.call('HMGET', key, 'state', 'fp', 'status', 'body', 'headers')
  if not rec[1] then
    return nil
  end
  if rec[2] ~= fp then
    return {'key_reused'}
  end
  if rec[1] == 'done' then
    return {'replay', tonumber(rec[3]), rec[4] or '', rec[5] or '{}'}
  end
  return {'in_progress'}
end

local function idem_mark_pending(key, fp, ttl_s)
  redis.call('HSET', key, 'state', 'pending', 'fp', fp)
  redis.call('EXPIRE', key, ttl_s)
end

-- Delete a pending record of this fingerprint (a failed request does not pin its key).
local function idem_drop_pending(key, fp)
  local rec = redis.call('HMGET', key, 'state', 'fp')
  if rec[1] == 'pending' and rec[2] == fp then
    return redis.call('DEL', key)
  end
  return 0
end
