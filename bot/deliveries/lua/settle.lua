-- KEYS: due zset, the delivery's hash, its attempt log. ARGV: id, claim token, outcome (delivered | retry |
-- failed | dropped), next due (ms, for retry), the attempt (JSON, or "" when none was made), keep (s), log max.
-- Only the claim's holder settles (a sender whose claim lapsed and was taken over changes nothing): 1 settled.
if redis.call('HGET', KEYS[2], 'claim') ~= ARGV[2] then return 0 end
if ARGV[5] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[5])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[7]), -1)
end
redis.call('HDEL', KEYS[2], 'claim')
if ARGV[3] == 'retry' then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  redis.call('HSET', KEYS[2], 'status', 'retrying', 'next', ARGV[4])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'status', ARGV[3], 'next', '')
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
