-- KEYS: the buyer's member hash, their orders hash. ARGV[1]: JSON {order, amount, at, month}
-- A past order imported (rewards/imports.py): it counts for "already a customer" (first_order) and for tiers by
-- spend (orders, spent, spent:<month>), and earns nothing: no points, no referral step. Kept in the orders hash
-- like any order (ops empty, so a later refund reverses no points), so importing it again changes nothing.
-- A buyer never seen before becomes a member from before (first_seen_via 'import', first seen at the order).
-- Returns 1 recorded now | 0 known already
local m, orders = KEYS[1], KEYS[2]
local c = cjson.decode(ARGV[1])
if redis.call('HEXISTS', orders, c.order) == 1 then return 0 end
local seen = redis.call('HGET', m, F.first_seen_at)
if not seen then
  redis.call('HSET', m, F.first_seen_at, c.at, F.first_seen_via, 'import')
elseif c.at < tonumber(seen) then
  redis.call('HSET', m, F.first_seen_at, c.at)
end
-- the member's first order is the earliest past order (rows of one file are imported side by side, in any order);
-- an order reported live is never replaced by a past one
local first = redis.call('HGET', m, F.first_order)
local prior = first and redis.call('HGET', orders, first)
if not first then
  redis.call('HSET', m, F.first_order, c.order)
elseif prior then
  local p = cjson.decode(prior)
  if p.imported and p.at and (c.at < p.at or (c.at == p.at and c.order < first)) then
    redis.call('HSET', m, F.first_order, c.order)
  end
end
redis.call('HINCRBY', m, F.orders, 1)
redis.call('HINCRBY', m, F.spent, c.amount)
redis.call('HINCRBY', m, F['spent:'] .. c.month, c.amount)
redis.call('HSET', orders, c.order, cjson.encode({order_id = c.order, purchase_points = 0, points_awarded = 0,
                                                  referral = cjson.null, ops = {}, amount = c.amount,
                                                  month = c.month, at = c.at, imported = true}))
return 1
