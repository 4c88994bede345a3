-- KEYS: referrer member, ledger, ops, referrer's referrals (hash friend -> status).
-- ARGV: friend, status (pending|completed|voided), op, points delta, at (ms)
-- The referrer's half of a referral, driven by the friend's referral record: idempotent by op.
local m, ledger, ops, made = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delta = tonumber(ARGV[4])
local written = 0
if delta ~= 0 then
  written = apply(m, ledger, ops, ARGV[3], delta, 'referral', 'referral.referrer', tonumber(ARGV[5]), ARGV[1], true)
end
redis.call('HSET', made, ARGV[1], ARGV[2])
return written
