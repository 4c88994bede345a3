-- KEYS: the member's 7 ledger keys. ARGV[1]: JSON {op, at}.
-- An erased member's points are forfeited (rewards/privacy.py): every held lot and every spendable lot gives up
-- what it has left, in one entry under `op`, so the ledger still adds up (points = spendable lots - debt,
-- pending = held lots). A debt stays as it is: it was owed, and nothing will pay it now.
-- Returns {written (1 now | 0 the op is known), spendable points taken, held points taken}
local k = K(KEYS)
local c = cjson.decode(ARGV[1])
if redis.call('HEXISTS', k.ops, opf(c.op)) == 1 then return {0, 0, 0} end
-- moved to the pseudonym meanwhile (another run of the same erasure): never start a ledger again
if redis.call('EXISTS', k.member) == 0 then return {0, 0, 0} end
local pend = 0
for _, id in ipairs(redis.call('ZRANGE', k.holdq, 0, -1)) do
  local lot = lot_get(k, id)
  if lot and lot.rem > 0 then
    pend = pend + lot.rem
    lot.rem = 0
    lot_set(k, id, lot)
  end
  redis.call('ZREM', k.holdq, id)
end
if pend > 0 then incr(k.member, F.pending_points, -pend) end
local avail = 0
local points = num(k.member, F.points)
if points > 0 then
  avail = take(k, points, nil)
  incr(k.member, F.points, -avail)
end
write(k, {op = c.op, kind = 'forfeit', rule = 'erasure', at = c.at, note = '', delta = -(avail + pend),
          avail = -avail, pend = -pend, state = 'done'})
return {1, avail, pend}
