-- idem_begin.lua — claim an Idempotency-Key for a request that skips admission (library save).
--
-- KEYS[1] idempotency record, hash    {p}:idem:{u}:{scope}:{idem_key}
-- ARGV[1] request fingerprint         ARGV[2] record TTL, s
--
-- Reply: {"new"} | {"replay", status, body, headers_json} | {"in_progress"} | {"key_reused"}

--#include idempotency

local settled = idem_lookup(KEYS[1], ARGV[1])
if settled then
  return settled
end
idem_mark_pending(KEYS[1], ARGV[1], ARGV[2])
return {'new'}
