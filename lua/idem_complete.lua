-- idem_complete.lua — store the first response for replay (pending -> done).
--
-- KEYS[1] idempotency record, hash
-- ARGV[1] request fingerprint   ARGV[2] HTTP status   ARGV[3] body, exact bytes
-- ARGV[4] headers, JSON object  ARGV[5] record TTL, s
--
-- Reply: 1 stored | 0 the key belongs to another fingerprint, or its pending record is
-- gone (dropped by an account deletion, or lost): nothing is written, and a retry is then
-- answered from Postgres

local fp = redis.call('HGET', KEYS[1], 'fp')
if not fp or fp ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'fp', ARGV[1], 'status', ARGV[2], 'body', ARGV[3],
  'headers', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
