-- KEYS: the member's 7 ledger keys. ARGV: now (ms), expiry mode (earned|inactivity|never), inactivity (ms)
-- The member's clock work: held lots whose time came become spendable, expired lots lose what is left.
-- Idempotent: running it twice at the same time changes nothing the second time.
-- Returns {released, expired, next due (ms) or 0}
local k = K(KEYS)
local now = tonumber(ARGV[1])
local released = release(k, now)
local expired = 0
if ARGV[2] == 'earned' then
  expired = expire(k, now)
elseif ARGV[2] == 'inactivity' then
  local last = tonumber(redis.call('HGET', k.member, F.last_activity) or now)
  if now - last >= tonumber(ARGV[3]) then expired = expire(k, NEVER) end
end
return {released, expired, next_due(k) or 0}
