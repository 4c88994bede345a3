-- KEYS: buyer member, ledger, ops, orders, referral. ARGV: order id, at (ms)
-- Reverses exactly what the order awarded, once; a referral the order completed becomes voided.
-- The balance may go negative when the points were already spent.
-- Returns {outcome (OK|ALREADY_REFUNDED|UNKNOWN_ORDER), points reversed}
local m, ledger, ops, orders, ref = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local order, at = ARGV[1], tonumber(ARGV[2])
local answer = redis.call('HGET', orders, order)
if not answer then return {'UNKNOWN_ORDER', 0} end
if redis.call('HGET', ops, 'refund:' .. order) then return {'ALREADY_REFUNDED', 0} end
local reversed = 0
local purchase = tonumber(cjson.decode(answer).purchase_points)
apply(m, ledger, ops, 'refund:' .. order, -purchase, 'refund', 'purchase', at, order, true)
reversed = purchase
if redis.call('HGET', ref, 'order') == order and redis.call('HGET', ref, 'status') == 'completed' then
  local friend_points = tonumber(redis.call('HGET', ref, 'friend_points') or '0')
  redis.call('HSET', ref, 'status', 'voided', 'void_reason', 'REFUNDED', 'voided_at', at)
  if friend_points > 0 then
    apply(m, ledger, ops, 'refund:referral:friend', -friend_points, 'refund', 'referral.friend', at, order, true)
    reversed = reversed + friend_points
  end
end
return {'OK', reversed}
