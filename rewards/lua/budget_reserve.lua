-- KEYS: the budget's month hash (rewards/keys.py budget_month), the held zset: one slot, tag {budget}.
-- ARGV: op id, yen, cap (0: none), force (1: an owner's release pays past the cap), friend, now ms.
-- Reserve the yen a completion may pay before its step runs in the friend's slot (rewards/budget.py). The
-- check and the count are one step here, so concurrent completions can never reserve past the cap together.
-- Idempotent by op id: an op already reserved or committed answers OK again and counts nothing.
-- Returns {1 reserved (now or before) | 0 over the cap, yen spent this month}
local month, held = KEYS[1], KEYS[2]
local op, yen, cap, force = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local spent = tonumber(redis.call('HGET', month, 'spent') or '0')
if redis.call('HEXISTS', month, 'r:' .. op) == 1 or redis.call('HEXISTS', month, 'c:' .. op) == 1 then
  return {1, spent}
end
if not force and cap > 0 and spent + yen > cap then
  redis.call('HSETNX', month, 'full', ARGV[6]) -- from now on this month's budget is reached: it held something
  if ARGV[5] ~= '' then redis.call('ZADD', held, 'NX', ARGV[6], ARGV[5]) end -- the hold's intent, before its step
  return {0, spent}
end
redis.call('HSET', month, 'r:' .. op, yen)
redis.call('EXPIRE', month, 34560000) -- kept 400 days, as the stats' days: the month's spend, then gone
return {1, redis.call('HINCRBY', month, 'spent', yen)}
