-- KEYS: friend member, friend referral. ARGV: referrer, code, op (event id), now (ms), window (ms)
-- Decides whether the friend may still be referred and, if so, records the referral as pending.
-- Returns {outcome, referrer, replay}: outcome OK or a refusal reason code.
local m, ref = KEYS[1], KEYS[2]
local op, now, window = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local prior_op = redis.call('HGET', ref, 'op')
if prior_op then
  if prior_op == op then return {'OK', redis.call('HGET', ref, 'referrer'), 1} end
  return {'ALREADY_REFERRED', redis.call('HGET', ref, 'referrer'), 0}
end
if redis.call('HGET', m, 'first_order') then return {'EXISTING_CUSTOMER', '', 0} end
if redis.call('HGET', m, 'first_seen_via') ~= 'follow' then return {'EXISTING_MEMBER', '', 0} end
local followed = tonumber(redis.call('HGET', m, 'followed_at'))
if now - followed > window then return {'EXPIRED', '', 0} end
redis.call('HSET', ref, 'referrer', ARGV[1], 'code', ARGV[2], 'op', op, 'status', 'pending', 'created_at', now)
redis.call('HSET', m, 'referred_by', ARGV[1])
return {'OK', ARGV[1], 0}
