-- KEYS: the referrer's 7 ledger keys, then the referrer's referrals hash (friend -> status).
-- ARGV[1]: JSON {friend, status (pending|completed|voided), award (earn spec or null), milestones:
-- [{count, award}], monthly_cap, month, at}
-- The referrer's half of a referral, driven by the friend's referral record; idempotent by op ids.
-- Returns {written, milestone reached or 0}
local k = K(KEYS)
local made = KEYS[8]
local c = cjson.decode(ARGV[1])
local before = redis.call('HGET', made, c.friend)
if before == c.status then return {0, 0} end
if c.status == 'pending' then
  if not before then redis.call('HSET', made, c.friend, 'pending') end
  return {0, 0}
end
local written, milestone = 0, 0
if c.status == 'completed' then
  redis.call('HSET', made, c.friend, 'completed')
  local count = incr(k.member, F.referrals_completed, 1)
  local this_month = incr(k.member, F['referrals:'] .. c.month, 1)
  -- the referrers' board counts by month of completion; a void takes it back from that month
  incr(k.member, F['ranked:'] .. c.month, 1)
  redis.call('HSET', made, c.friend .. '|month', c.month)
  if c.award ~= cjson.null and (c.monthly_cap == 0 or this_month <= c.monthly_cap) then
    written = earn(k, c.award)
  end
  for _, m in ipairs(c.milestones) do
    if m.count == count then
      earn(k, m.award)
      redis.call('HSET', made, c.friend .. '|milestone', m.award.op)
      milestone = count
    end
  end
elseif c.status == 'voided' then
  redis.call('HSET', made, c.friend, 'voided')
  if before == 'completed' then
    incr(k.member, F.referrals_completed, -1)
    local ranked_in = redis.call('HGET', made, c.friend .. '|month')
    if ranked_in then incr(k.member, F['ranked:'] .. ranked_in, -1) end
    local at = c.at
    written = reverse(k, 'referral:' .. c.friend, {op = 'void:referral:' .. c.friend, kind = 'void',
                                                   rule = 'referral.referrer', at = at,
                                                   write_off = c.write_off})
    local m = redis.call('HGET', made, c.friend .. '|milestone')
    if m then
      reverse(k, m, {op = 'void:' .. m, kind = 'void', rule = 'referral.milestone', at = at, write_off = c.write_off})
    end
  end
end
return {written, milestone}
