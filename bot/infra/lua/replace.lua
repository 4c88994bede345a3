-- KEYS: lease. ARGV: the holder seen, new owner, ttl (ms). Hand the lease to the new owner only if the holder
-- is still the one seen (or it lapsed meanwhile); 1 when the new owner holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
