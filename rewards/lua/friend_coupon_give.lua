-- Friend welcome coupon (friend's slot): file the coupon the referral record says is due, once.
-- KEYS: the friend's referral hash, coupons hash, coupon order zset.
-- ARGV: the coupon's token, the coupon (JSON), now (ms).
-- Returns {'NEW', coupon} | {'DONE', the coupon given before} | {'NOT_DUE'} (no coupon owed: none in the rules
-- when attributed, a refusal, or the referral was voided before it was given)
local ref = KEYS[1]
local state = redis.call('HGET', ref, 'coupon')
if state and state ~= 'due' then return {'DONE', redis.call('HGET', KEYS[2], state)} end
if state ~= 'due' or redis.call('HGET', ref, 'status') == 'voided' then return {'NOT_DUE'} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HSET', ref, 'coupon', ARGV[1])
return {'NEW', ARGV[2]}
