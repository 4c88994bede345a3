-- KEYS: the member's 7 ledger keys. ARGV[1]: JSON {joined (ms), award (earn spec of the opening balance, or
-- null), customer ('' or the shop customer already linked to them in the customer's slot)}
-- One imported member row, all in the member's slot in one step (rewards/imports.py): a friend from before
-- (first_seen_via 'import', never referable as new), first seen at `joined` (only ever moved earlier), their
-- opening balance once (op id 'import'), the mirror of their customer link.
-- A second opening balance of another amount is refused and nothing is written (the shop corrects a balance
-- with an adjustment, never by importing again).
-- Returns {'OK', 1 when anything changed else 0} | {'POINTS_DIFFER', 0}
local k = K(KEYS)
local c = cjson.decode(ARGV[1])
local award = c.award
if award == cjson.null then award = nil end
if award then
  local prior = entry_of(k, award.op)
  if prior and prior.delta ~= award.amount then return {'POINTS_DIFFER', 0} end
end
local changed = 0
local first = redis.call('HMGET', k.member, F.first_seen_via, F.first_seen_at)
if first[1] ~= 'import' then
  redis.call('HSET', k.member, F.first_seen_via, 'import')
  changed = 1
end
if not first[2] or c.joined < tonumber(first[2]) then
  redis.call('HSET', k.member, F.first_seen_at, c.joined)
  changed = 1
end
if c.customer ~= '' and redis.call('HGET', k.member, F.customer_id) ~= c.customer then
  redis.call('HSET', k.member, F.customer_id, c.customer)
  changed = 1
end
if award then
  local written = earn(k, award)
  if written == 1 then changed = 1 end
end
return {'OK', changed}
