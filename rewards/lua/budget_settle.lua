-- KEYS: the budget's month hash, the held zset (tag {budget}: one slot).
-- ARGV: op id, yen actually paid ('' : nothing was paid, give the reservation back), the friend ('' : none).
-- Turns a reservation into what the completion paid (the part of it a milestone never reached goes back), or
-- gives it back when the step did not complete; either way the friend's completion no longer waits (held set).
-- An op never reserved is counted as paid once. Idempotent: a committed op changes nothing.
-- Returns yen spent this month
local month, held, op = KEYS[1], KEYS[2], ARGV[1]
if ARGV[3] ~= '' then redis.call('ZREM', held, ARGV[3]) end
local committed = redis.call('HGET', month, 'c:' .. op)
if committed then return tonumber(redis.call('HGET', month, 'spent') or '0') end
local reserved = tonumber(redis.call('HGET', month, 'r:' .. op) or '0')
redis.call('HDEL', month, 'r:' .. op)
if ARGV[2] == '' then
  return redis.call('HINCRBY', month, 'spent', -reserved)
end
redis.call('HSET', month, 'c:' .. op, ARGV[2])
redis.call('EXPIRE', month, 34560000) -- kept 400 days (budget_reserve.lua)
return redis.call('HINCRBY', month, 'spent', tonumber(ARGV[2]) - reserved)
