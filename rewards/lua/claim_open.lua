-- Catalog: a claim minted when a member looks at a reward; its id goes into the confirm button.
-- KEYS: the claim (member's slot). ARGV: reward id, coupon token, generated code, created (ms), expires_at (ms),
-- seconds to keep it. Returns 1.
redis.call('HSET', KEYS[1], 'reward', ARGV[1], 'token', ARGV[2], 'code', ARGV[3], 'created', ARGV[4],
           'expires_at', ARGV[5], 'state', 'open')
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
