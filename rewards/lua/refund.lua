-- KEYS: the buyer's 7 ledger keys, orders hash, referral hash. ARGV: order id, at (ms), write off (0/1)
-- Reverses exactly what the order earned (every op kept with its answer), once; a referral the order
-- completed becomes voided. The balance may go below zero when the points were already spent.
-- Returns {outcome (OK|ALREADY_REFUNDED|UNKNOWN_ORDER), points reversed}
local k = K(KEYS)
local orders, ref = KEYS[8], KEYS[9]
local order, at = ARGV[1], tonumber(ARGV[2])
local raw = redis.call('HGET', orders, order)
if not raw then return {'UNKNOWN_ORDER', 0} end
if redis.call('HGET', k.member, F['refunded:'] .. order) then return {'ALREADY_REFUNDED', 0} end
redis.call('HSET', k.member, F['refunded:'] .. order, at)
local answer = cjson.decode(raw)
incr(k.member, F.spent, -answer.amount)
incr(k.member, F['spent:'] .. answer.month, -answer.amount)
local reversed = 0
for _, op in ipairs(answer.ops) do
  local _, amount = reverse(k, op, {op = 'refund:' .. op, kind = 'refund', rule = 'refund', at = at, note = order,
                                    write_off = ARGV[3] == '1'})
  reversed = reversed + amount
end
local ref_status = redis.call('HGET', ref, 'status')
if redis.call('HGET', ref, 'order') == order and (ref_status == 'completed' or ref_status == 'review') then
  redis.call('HSET', ref, 'status', 'voided', 'void_reason', 'REFUNDED', 'voided_at', at)
  -- a referral staff approved after review paid the friend outside the order's ops: take that back too
  -- (a no-op when the loop above already did, since the op id is the same)
  local _, amount = reverse(k, 'referral:friend', {op = 'refund:referral:friend', kind = 'refund', rule = 'refund',
                                                   at = at, note = order, write_off = ARGV[3] == '1'})
  reversed = reversed + amount
end
return {'OK', reversed}
