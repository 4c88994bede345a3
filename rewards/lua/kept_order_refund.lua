-- KEYS: the customer's kept (unattributed) orders hash. ARGV: order id, refund id, yen refunded.
-- A refund of an order kept for a customer not linked yet: what is left of it is what will be credited when
-- they link (so its points and whether it qualifies a referral follow what was not refunded). Once per refund id.
-- Returns {outcome (OK|ALREADY_REFUNDED|UNKNOWN_ORDER), yen left}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'UNKNOWN_ORDER', 0} end
local kept = cjson.decode(raw)
if type(kept.refunds) ~= 'table' then kept.refunds = {} end
if kept.refunds[ARGV[2]] then return {'ALREADY_REFUNDED', kept.amount} end
local yen = math.max(0, math.min(kept.amount, tonumber(ARGV[3])))
kept.amount = kept.amount - yen
kept.refunds[ARGV[2]] = yen
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(kept))
return {'OK', kept.amount}
