-- KEYS: the friend's 7 ledger keys, then the friend's referral hash.
-- ARGV[1]: JSON {decision (approve|void), at, by, friend_award (earn spec)}
-- Staff decide a referral: approve one held for review (it completes and the friend's side is paid here,
-- the referrer's by settle()), or void one that is pending or in review (nobody was paid yet).
-- Idempotent: the same decision again answers ALREADY and changes nothing.
-- Returns {outcome (OK|ALREADY|UNKNOWN_REFERRAL|NOT_IN_REVIEW|NOT_VOIDABLE), status now}
local k = K(KEYS)
local ref = KEYS[8]
local c = cjson.decode(ARGV[1])
local status = redis.call('HGET', ref, 'status')
if not status then return {'UNKNOWN_REFERRAL', ''} end
if c.decision == 'approve' then
  if status == 'completed' and redis.call('HEXISTS', ref, 'approved_by') == 1 then return {'ALREADY', status} end
  if status ~= 'review' then return {'NOT_IN_REVIEW', status} end
  redis.call('HSET', ref, 'status', 'completed', 'completed_at', c.at, 'approved_by', c.by,
             'hold_until', c.friend_award.hold_until or 0)
  earn(k, c.friend_award)
  return {'OK', 'completed'}
end
if status == 'voided' and redis.call('HEXISTS', ref, 'voided_by') == 1 then return {'ALREADY', status} end
if status ~= 'review' and status ~= 'pending' then return {'NOT_VOIDABLE', status} end
-- voided_from: the status it left, for the decision's audit entry (a retry reads it there)
redis.call('HSET', ref, 'status', 'voided', 'void_reason', 'STAFF', 'voided_at', c.at, 'voided_by', c.by,
           'voided_from', status)
return {'OK', 'voided'}
