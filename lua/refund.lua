-- refund.lua — give a generation's unit back once: to the monthly pool or the credit that
-- paid it (and the full-regen cap).
--
-- KEYS[1] refund marker          {p}:refund:{generation_id}
-- KEYS[2] monthly counter        {p}:usage:{u}:gen_used:{yyyymm} (the month charged)
-- KEYS[3] full-regen counter     {p}:usage:{u}:full_regen_used:{yyyymm}
-- KEYS[4] credits, hash          {p}:credits:{u}
-- ARGV[1] marker EXPIREAT, epoch s (after the charged month's counters are gone)
-- ARGV[2] full regen: "1" when the generation was a full regeneration, else "0"
-- ARGV[3] credit id: the credit that paid | "" (the monthly pool)
--
-- Reply: 1 refunded by this call | 0 already refunded

--#include refund

return refund_once(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1], nil, KEYS[4], ARGV[3])
