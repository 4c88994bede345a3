-- KEYS: the member's used coupons hash (token -> used at, ms).
-- ARGV: the coupon's token, now (ms), the op id of this use.
-- A coupon is used once. The use's op id is kept beside its time (field '@' .. token; a token never starts
-- with '@'), written together, so a retry of the same use (the same op) can be told it is the one that used it.
-- Returns {1 used now | 0 used before, used at (ms), the op id of the use ('' for a use older than op ids)}
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], '@' .. ARGV[1], ARGV[3])
  return {1, ARGV[2], ARGV[3]}
end
return {0, redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[1], '@' .. ARGV[1]) or ''}
