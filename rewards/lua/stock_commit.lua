-- Catalog (reward's slot): a held reservation became a coupon. Idempotent.
-- KEYS: stock hash, the claim's reservation, held zset. ARGV: claim id, seconds to keep. Returns 1 now, else 0.
local stock, res = KEYS[1], KEYS[2]
if redis.call('HGET', res, 'state') ~= 'held' then return 0 end
redis.call('HINCRBY', stock, 'claimed', 1)
redis.call('HSET', res, 'state', 'done')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('EXPIRE', res, ARGV[2])
return 1
