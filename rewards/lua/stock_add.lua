-- Catalog (reward's slot): staff add (or, negative, remove) stock; never below what is already taken.
-- KEYS: stock hash. ARGV: how many, stock from the rules. Returns {1 | 0 refused, stock left}
local stock = KEYS[1]
local left = tonumber(ARGV[2]) + tonumber(redis.call('HGET', stock, 'added') or '0')
             - tonumber(redis.call('HGET', stock, 'taken') or '0')
local add = tonumber(ARGV[1])
if left + add < 0 then return {0, left} end
redis.call('HINCRBY', stock, 'added', add)
return {1, left + add}
