-- KEYS[1]: one shop-time day's facts (rewards/keys.py facts_day): a hash, op key -> "<seq> <fact>", and `#`, the
--          day's last sequence number (the order facts were accepted in, which the what-if replay follows).
-- ARGV: the fact's op key (the same operation id the fact was accepted under), the fact (JSON), seconds kept.
-- Once per op key: a redelivery, a retry or a second caller of the same fact finds it and writes nothing.
-- Returns 1 when written now, 0 when it was there already.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local seq = redis.call('HINCRBY', KEYS[1], '#', 1)
redis.call('HSET', KEYS[1], ARGV[1], seq .. ' ' .. ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
