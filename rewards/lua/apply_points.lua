-- KEYS: the member's 7 ledger keys. ARGV[1]: JSON {mode: earn|spend|deduct, op, amount, kind, rule, at, note,
-- expires, hold_until, month, day, caps}. Returns {written (1 new, 0 known op, -1 refused), balance}
local k = K(KEYS)
local c = cjson.decode(ARGV[1])
local written
if c.mode == 'earn' then
  written = earn(k, c)
elseif c.mode == 'spend' then
  written = spend(k, c)
else
  written = deduct(k, c, nil)
end
return {written, num(k.member, F.points)}
