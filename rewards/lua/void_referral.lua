-- KEYS: the friend's 7 ledger keys, referral hash. ARGV: reason, at (ms), write off (0/1)
-- The friend blocked the account while the referral's points were still on hold: void it.
-- Returns 1 when voided now.
local k = K(KEYS)
local ref = KEYS[8]
local at = tonumber(ARGV[2])
if redis.call('HGET', ref, 'status') ~= 'completed' then return 0 end
if tonumber(redis.call('HGET', ref, 'hold_until') or '0') <= at then return 0 end
redis.call('HSET', ref, 'status', 'voided', 'void_reason', ARGV[1], 'voided_at', at)
reverse(k, 'referral:friend', {op = 'void:referral:friend', kind = 'void', rule = 'referral.friend', at = at,
                               write_off = ARGV[3] == '1'})
return 1
