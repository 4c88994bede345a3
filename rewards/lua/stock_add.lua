-- Catalog (reward's slot): staff add (or, negative, remove) stock; never below what is already taken.
-- KEYS: stock hash. ARGV: how many, stock from the rules, and optionally the staff top-ups the caller last saw
-- (a form's: a change made meanwhile refuses this one, so a form sent twice adds once).
-- Returns {1 | 0 refused: not that much left | -1 refused: changed meanwhile, stock left}
local stock = KEYS[1]
local added = tonumber(redis.call('HGET', stock, 'added') or '0')
local left = tonumber(ARGV[2]) + added - tonumber(redis.call('HGET', stock, 'taken') or '0')
if ARGV[3] and ARGV[3] ~= '' and tonumber(ARGV[3]) ~= added then return {-1, left} end
local add = tonumber(ARGV[1])
if left + add < 0 then return {0, left} end
redis.call('HINCRBY', stock, 'added', add)
return {1, left + add}
