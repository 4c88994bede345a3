-- Friend welcome coupon (the pool's slot): take one code from the pool for a friend, once. A retry after a crash
-- gets the code taken before, so no code is lost between the pool and the friend's coupons.
-- KEYS: the code pool (list), this friend's record of the code taken (hash).
-- Returns the code, or '' when the pool is empty (nothing recorded: a later try takes the next upload's code).
local code = redis.call('HGET', KEYS[2], 'code')
if code then return code end
code = redis.call('LPOP', KEYS[1])
if not code then return '' end
redis.call('HSET', KEYS[2], 'code', code)
return code
