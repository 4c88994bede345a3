-- Catalog (reward's slot): hold one of the reward's stock for a claim, and for a pool reward take a code.
-- Idempotent by claim id: a second call answers what the first one did.
-- KEYS: stock hash (taken, claimed, added), the claim's reservation, held zset, code pool.
-- ARGV: claim id, member, now (ms), stock from the rules (-1 = no limit), '1' for a pool reward, seconds to keep.
-- Returns {state, code}: state held | done | released | out_of_stock
local stock, res = KEYS[1], KEYS[2]
local state = redis.call('HGET', res, 'state')
if state then return {state, redis.call('HGET', res, 'code') or ''} end
local function none_left()
  redis.call('HSET', res, 'member', ARGV[2], 'at', ARGV[3], 'state', 'out_of_stock')
  redis.call('EXPIRE', res, ARGV[6])
  return {'out_of_stock', ''}
end
local limit = tonumber(ARGV[4])
if limit >= 0 then
  local taken = tonumber(redis.call('HGET', stock, 'taken') or '0')
  local added = tonumber(redis.call('HGET', stock, 'added') or '0')
  if taken >= limit + added then return none_left() end
end
local code = ''
if ARGV[5] == '1' then
  code = redis.call('LPOP', KEYS[4])
  if not code then return none_left() end
end
redis.call('HINCRBY', stock, 'taken', 1)
redis.call('HSET', res, 'member', ARGV[2], 'at', ARGV[3], 'state', 'held', 'code', code)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return {'held', code}
