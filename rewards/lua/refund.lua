-- KEYS: the buyer's 7 ledger keys, orders hash, referral hash.
-- ARGV: order id, at (ms), write off (0/1), refund id ('' = the whole order, the conversions API),
--       yen refunded by this refund ('' = everything left), the rules' referral minimum order (yen).
-- Reverses what the refunded part of the order earned, once per refund id:
--   * purchase points (the order's `purchase_ops`) in proportion to the yen refunded so far, rounded down,
--     so successive partial refunds add up and the last one reverses exactly what is left;
--   * once nothing is left (or the whole order is refunded), every op the order earned (first purchase bonus,
--     the friend's referral points too), and a referral the order completed becomes voided;
--   * a partial refund voids that referral only when what is left no longer reaches the minimum order.
-- The balance may go below zero when the points were already spent.
-- The order's refund state lives beside its answer in the orders hash, under "refunds <order>" (a field no
-- order id can be: order ids have no spaces): {yen, ids = {refund id = yen}, rev = {op = points reversed}}.
-- Returns {outcome (OK|ALREADY_REFUNDED|UNKNOWN_ORDER), points reversed, yen left, referral voided (0/1)}
local k = K(KEYS)
local orders, ref = KEYS[8], KEYS[9]
local order, at, write_off = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local refund_id, part, minimum = ARGV[4] or '', ARGV[5] or '', tonumber(ARGV[6] or '0') or 0
local raw = redis.call('HGET', orders, order)
if not raw then return {'UNKNOWN_ORDER', 0, 0, 0} end
local answer = cjson.decode(raw)
local state_field = 'refunds ' .. order
local state_raw = redis.call('HGET', orders, state_field)
local state = state_raw and cjson.decode(state_raw) or {yen = 0, ids = {}, rev = {}}
local left_before = answer.amount - state.yen
if redis.call('HGET', k.member, F['refunded:'] .. order) then return {'ALREADY_REFUNDED', 0, 0, 0} end
if refund_id ~= '' and state.ids[refund_id] then return {'ALREADY_REFUNDED', 0, left_before, 0} end

local yen = left_before
if part ~= '' then yen = math.max(0, math.min(left_before, tonumber(part))) end
local whole = refund_id == '' or yen >= left_before
state.yen = state.yen + yen
if refund_id ~= '' then state.ids[refund_id] = yen end
incr(k.member, F.spent, -yen)
incr(k.member, F['spent:'] .. answer.month, -yen)

-- take back `amount` more of what op earned (never more than it earned), under op id `op_id`
local reversed = 0
local function take_back(op, op_id, amount)
  local e = entry_of(k, op)
  if not e or e.delta <= 0 then return end
  local done = state.rev[op] or 0
  amount = math.min(amount, e.delta - done)
  if amount <= 0 then return end
  local written, taken = deduct(k, {op = op_id, kind = 'refund', rule = 'refund', at = at, note = order,
                                    amount = amount, reverses = op, write_off = write_off}, e.id)
  if written == 1 then
    state.rev[op] = done + amount
    reversed = reversed + taken
  end
end

-- op ids: the whole order at once keeps today's 'refund:<op>'; a part is 'refund:<refund id>:<op>'
local function op_id(op) return refund_id == '' and ('refund:' .. op) or ('refund:' .. refund_id .. ':' .. op) end
local purchase_ops = {}
for _, op in ipairs(answer.ops) do -- orders recorded before purchase_ops was kept: their 'order:' ops
  if answer.purchase_ops == nil and op:sub(1, 6) == 'order:' then purchase_ops[op] = true end
end
for _, op in ipairs(answer.purchase_ops or {}) do purchase_ops[op] = true end
local voided = 0
if whole then
  redis.call('HSET', k.member, F['refunded:'] .. order, at)
  for _, op in ipairs(answer.ops) do take_back(op, op_id(op), math.huge) end
else
  for _, op in ipairs(answer.ops) do
    local e = purchase_ops[op] and entry_of(k, op)
    if e and e.delta > 0 then
      -- what should be reversed by now, in proportion to the yen refunded so far (rounded down)
      local due = math.floor(e.delta * state.yen / answer.amount)
      take_back(op, op_id(op), due - (state.rev[op] or 0))
    end
  end
end
local left = answer.amount - state.yen
local ref_status = redis.call('HGET', ref, 'status')
if redis.call('HGET', ref, 'order') == order and (ref_status == 'completed' or ref_status == 'review')
    and (whole or left < minimum) then
  redis.call('HSET', ref, 'status', 'voided', 'void_reason', 'REFUNDED', 'voided_at', at)
  voided = 1
  -- the friend's referral points (in the order's ops, or paid outside them when staff approved a review)
  take_back('referral:friend', op_id('referral:friend'), math.huge)
end
redis.call('HSET', orders, state_field, cjson.encode(state))
return {'OK', reversed, left, voided}
