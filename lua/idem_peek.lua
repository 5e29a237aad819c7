-- idem_peek.lua — read an Idempotency-Key without claiming it: for a keyed request whose
-- own checks (a regeneration's busy draft) must not answer before its key has (SPEC §3).
--
-- KEYS[1] idempotency record, hash    {p}:idem:{u}:{scope}:{idem_key}
-- ARGV[1] request fingerprint
--
-- Reply: {"new"} (no record: go on; admission claims it) | {"replay", status, body,
-- headers_json} | {"in_progress"} | {"key_reused"}

--#include idempotency

local settled = idem_lookup(KEYS[1], ARGV[1])
if settled then
  return settled
end
return {'new'}
