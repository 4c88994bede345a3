-- Catalog, last step of a confirm (member's slot): the coupon, once, and only after the points were spent.
-- KEYS: claim, the member's ops hash, coupons hash, coupon order zset. ARGV: the spend's op id, coupon JSON, now.
-- Returns {'NEW', coupon} | {'DONE', the coupon issued before} | {'REFUSED', reason} | {'NOT_SPENT'} | {'UNKNOWN_CLAIM'}
local claim = KEYS[1]
local state = redis.call('HGET', claim, 'state')
local token = redis.call('HGET', claim, 'token')
if state == 'done' then return {'DONE', redis.call('HGET', KEYS[3], token)} end
if state == 'refused' then return {'REFUSED', redis.call('HGET', claim, 'reason')} end
if state ~= 'pending' then return {'UNKNOWN_CLAIM'} end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return {'NOT_SPENT'} end
redis.call('HSET', KEYS[3], token, ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], token)
redis.call('HSET', claim, 'state', 'done', 'done_at', ARGV[3])
return {'NEW', ARGV[2]}
