-- KEYS: the buyer's 7 ledger keys, orders hash, referral hash.
-- ARGV[1]: JSON {order, amount, at, month, awards: [earn specs], first_awards: [earn specs for a first
-- purchase], referral_min, friend_award (earn spec), review (true: hold the referral for staff, pay nobody),
-- ring_hold (true: hold it too when its record names a flagged referral ring, rewards/ring_watch.py),
-- budget_hold (true: hold it too, BUDGET, when the month's referral budget cannot pay it now: rewards/budget.py)}
-- Records an order once: its awards, and for the buyer's first order a pending referral completes with the
-- friend's side paid here (the referrer's side is a separate single-member step). Every op the order
-- earned is kept with its answer, so a refund can reverse exactly those.
-- Returns {new (1/0), answer JSON, a referred friend's first order (1/0; new orders only: the stats' funnel)}
local k = K(KEYS)
local orders, ref = KEYS[8], KEYS[9]
local c = cjson.decode(ARGV[1])
local prior = redis.call('HGET', orders, c.order)
if prior then return {0, prior} end
local first = not redis.call('HGET', k.member, F.first_order)
if first then redis.call('HSET', k.member, F.first_order, c.order) end
incr(k.member, F.orders, 1)
incr(k.member, F.spent, c.amount)
incr(k.member, F['spent:'] .. c.month, c.amount)
local awarded, purchase_points, ops, purchase_ops = 0, 0, {}, {}
local function award(spec)
  local written, amount = earn(k, spec)
  if written == 1 then
    awarded = awarded + amount
    table.insert(ops, spec.op)
  end
  return amount
end
for _, spec in ipairs(c.awards) do
  local amount = award(spec)
  purchase_points = purchase_points + amount
  if amount > 0 then table.insert(purchase_ops, spec.op) end -- a partial refund reverses these in proportion
end
if first then
  for _, spec in ipairs(c.first_awards) do award(spec) end
end
local referral = cjson.null
local status = redis.call('HGET', ref, 'status')
local ring = c.ring_hold and redis.call('HGET', ref, 'ring') and not redis.call('HGET', ref, 'ring_cleared')
if status == 'pending' and first and c.amount >= c.referral_min and (c.review or ring or c.budget_hold) then
  -- the order carries a fingerprint of the referrer's, or the friend is in a flagged ring, or the month's referral
  -- budget cannot pay it now: staff decide (review_decide.lua), or a later month's budget; nobody is paid yet
  local reason = (c.review and 'FINGERPRINT') or (ring and 'RING') or 'BUDGET'
  redis.call('HSET', ref, 'status', 'review', 'review_at', c.at, 'review_reason', reason,
             'order', c.order)
  referral = {status = 'review', referrer = redis.call('HGET', ref, 'referrer')}
elseif status == 'pending' and first and c.amount >= c.referral_min then
  redis.call('HSET', ref, 'status', 'completed', 'completed_at', c.at, 'order', c.order,
             'hold_until', c.friend_award.hold_until or 0)
  award(c.friend_award)
  referral = {status = 'completed', referrer = redis.call('HGET', ref, 'referrer')}
elseif status then
  referral = {status = status, referrer = redis.call('HGET', ref, 'referrer')}
end
local answer = cjson.encode({order_id = c.order, purchase_points = purchase_points, points_awarded = awarded,
                             referral = referral, ops = ops, purchase_ops = purchase_ops, amount = c.amount, month = c.month})
redis.call('HSET', orders, c.order, answer)
return {1, answer, (first and status) and 1 or 0}
