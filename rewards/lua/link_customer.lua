-- KEYS[1]: the customer's hash (rewards/keys.py customer). ARGV: the LINE user, the link's op (its nonce), now (ms).
-- The customer -> user index, the record of truth for "who is this customer on LINE": one user at a time. A
-- re-run of the same link (its op) changes nothing and returns what the first run returned.
-- Returns {1 first run | 0 re-run, the user the customer was linked to before ('' for none)}
local c = redis.call('HMGET', KEYS[1], 'op', 'prev', 'user')
if c[1] == ARGV[2] then return {0, c[2] or ''} end
local prev = c[3] or ''
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'op', ARGV[2], 'prev', prev, 'at', ARGV[3])
return {1, prev}
