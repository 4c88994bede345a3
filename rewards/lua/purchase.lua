-- KEYS: buyer member, ledger, ops, orders, referral.
-- ARGV: order id, amount (yen), purchase points, at (ms), friend referral points, referral minimum amount
-- Records an order once: purchase points, and for the buyer's first order a pending referral becomes
-- completed with the friend's side paid here (the referrer's side is a separate single-member step).
-- Returns {new (1/0), answer JSON}
local m, ledger, ops, orders, ref = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local order, amount, points, at = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local prior = redis.call('HGET', orders, order)
if prior then return {0, prior} end
local first = not redis.call('HGET', m, 'first_order')
if first then redis.call('HSET', m, 'first_order', order) end
redis.call('HINCRBY', m, 'orders', 1)
redis.call('HINCRBY', m, 'spent', amount)
local awarded = 0
if points > 0 then
  apply(m, ledger, ops, 'order:' .. order, points, 'purchase', 'purchase', at, order, false)
  awarded = points
end
local referral = cjson.null
local status = redis.call('HGET', ref, 'status')
if status == 'pending' and first and amount >= tonumber(ARGV[6]) then
  local friend_points = tonumber(ARGV[5])
  redis.call('HSET', ref, 'status', 'completed', 'completed_at', at, 'order', order, 'friend_points', friend_points)
  if friend_points > 0 then
    apply(m, ledger, ops, 'referral:friend', friend_points, 'referral', 'referral.friend', at, order, false)
    awarded = awarded + friend_points
  end
  referral = {status = 'completed', referrer = redis.call('HGET', ref, 'referrer'), friend_points = friend_points}
elseif status then
  referral = {status = status, referrer = redis.call('HGET', ref, 'referrer')}
end
local answer = cjson.encode({order_id = order, purchase_points = points, points_awarded = awarded,
                             referral = referral})
redis.call('HSET', orders, order, answer)
return {1, answer}
