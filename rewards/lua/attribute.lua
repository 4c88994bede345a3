-- KEYS: the friend's 7 ledger keys, then the friend's referral hash.
-- ARGV[1]: JSON {referrer, code, op, now, window, complete_on_join, hold_reason (BUDGET or null: hold
--          instead of completing on joining), friend_award (earn spec or null),
--          coupon (true: the rules give the friend a welcome coupon), exp and arm (the referrer's experiment arm,
--          absent outside an experiment: kept with the referral, whose amounts it decides)}
-- Decides whether the friend may still be referred and, if so, records the referral: pending, or
-- completed at once (with the friend's side paid) when the rules pay on joining. With a welcome coupon the
-- record says it is due (`coupon` = 'due'), in the same step: rewards/friend_coupons.py gives it once.
-- Returns {outcome, referrer, replay}: outcome OK or a refusal reason code.
local k = K(KEYS)
local ref = KEYS[8]
local c = cjson.decode(ARGV[1])
local prior_op = redis.call('HGET', ref, 'op')
if prior_op then
  if prior_op == c.op then return {'OK', redis.call('HGET', ref, 'referrer'), 1} end
  return {'ALREADY_REFERRED', redis.call('HGET', ref, 'referrer'), 0}
end
if redis.call('HGET', k.member, F.first_order) then return {'EXISTING_CUSTOMER', '', 0} end
if redis.call('HGET', k.member, F.first_seen_via) ~= 'follow' then return {'EXISTING_MEMBER', '', 0} end
local followed = tonumber(redis.call('HGET', k.member, F.followed_at))
if c.now - followed > c.window then return {'EXPIRED', '', 0} end
redis.call('HSET', ref, 'referrer', c.referrer, 'code', c.code, 'op', c.op, 'status', 'pending', 'created_at', c.now)
redis.call('HSET', k.member, F.referred_by, c.referrer)
if c.exp then redis.call('HSET', ref, 'exp', c.exp, 'arm', c.arm) end
if c.coupon then redis.call('HSET', ref, 'coupon', 'due') end
if c.complete_on_join and c.hold_reason ~= cjson.null then
  -- [budget]: the month's budget cannot pay it now; held for review (BUDGET) until next month or an owner's release
  redis.call('HSET', ref, 'status', 'review', 'review_at', c.now, 'review_reason', c.hold_reason)
elseif c.complete_on_join then
  redis.call('HSET', ref, 'status', 'completed', 'completed_at', c.now, 'hold_until', c.friend_award.hold_until or 0)
  earn(k, c.friend_award)
end
return {'OK', c.referrer, 0}
