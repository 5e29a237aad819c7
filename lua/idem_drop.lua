-- idem_drop.lua — forget a pending record so a request that failed does not pin its key.
--
-- KEYS[1] idempotency record, hash
-- ARGV[1] request fingerprint (only its own pending record is dropped; done stays)
--
-- Reply: 1 dropped | 0 nothing to drop

--#include idempotency

return idem_drop_pending(KEYS[1], ARGV[1])
