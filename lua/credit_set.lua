-- credit_set.lua — write one credit (pack or grant) into the user's cached credits hash.
-- A hash that is not cached is left alone: the next admission seeds it from Postgres.
-- The limit never drops below the units already charged: taking a credit away (a
-- reversal, a Stripe refund, a deleted account) removes only what is unused.
--
-- KEYS[1] credits, hash           {p}:credits:{u}
-- ARGV[1] credit id
-- ARGV[2] expires, epoch ms
-- ARGV[3] limit wanted, units (0 = take every unused unit away)
-- ARGV[4] kind: pack | grant
--
-- Reply: {cached (0|1), limit written, used}

if not redis.call('HGET', KEYS[1], '_') then
  return {0, 0, 0}
end
local used_field = 'u:' .. ARGV[1]
local used = tonumber(redis.call('HGET', KEYS[1], used_field) or '0')
local limit = math.max(tonumber(ARGV[3]), used)
redis.call('HSET', KEYS[1], 'c:' .. ARGV[1], ARGV[2] .. ':' .. limit .. ':' .. ARGV[4],
  used_field, used)
return {1, limit, used}
