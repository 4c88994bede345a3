-- Catalog (reward's slot): give a held reservation back (its pool code goes back to the front of the pool).
-- Idempotent; a claim never reserved is marked released so that a late reservation cannot happen.
-- KEYS: stock hash, the claim's reservation, held zset, code pool. ARGV: claim id, seconds to keep, member, now.
-- Returns 1 when it gave stock back now, else 0.
local stock, res = KEYS[1], KEYS[2]
local state = redis.call('HGET', res, 'state')
if state == 'held' then
  redis.call('HINCRBY', stock, 'taken', -1)
  local code = redis.call('HGET', res, 'code')
  if code and code ~= '' then redis.call('LPUSH', KEYS[4], code) end
  redis.call('HSET', res, 'state', 'released')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('EXPIRE', res, ARGV[2])
  return 1
end
if not state then
  redis.call('HSET', res, 'member', ARGV[3], 'at', ARGV[4], 'state', 'released')
  redis.call('EXPIRE', res, ARGV[2])
end
return 0
