-- KEYS[1]: the nonce's hash (rewards/keys.py link_nonce). ARGV: the accountLink event's id, its LINE user, now (ms).
-- A nonce works once: the first event that takes it marks it used by that event, so a re-run of the same event
-- (a crash, a handler tried again) takes it again, and any other event is refused. Nothing else changes here.
-- Returns {'OK', customer} | {'UNKNOWN'} | {'EXPIRED'} | {'USED'} | {'OTHER_USER'}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'UNKNOWN'} end
local n = redis.call('HMGET', KEYS[1], 'customer', 'user', 'expires_at', 'used_by')
if n[4] then
  if n[4] == ARGV[1] then return {'OK', n[1]} end
  return {'USED'}
end
if tonumber(ARGV[3]) > tonumber(n[3]) then return {'EXPIRED'} end
-- the link token was issued for one LINE user; LINE sends the event for the user who opened it, so another one
-- means the link went somewhere it should not have: refused (LINE checks this too; we do not rely on it alone)
if n[2] and n[2] ~= '' and n[2] ~= ARGV[2] then return {'OTHER_USER'} end
redis.call('HSET', KEYS[1], 'used_by', ARGV[1], 'used_at', ARGV[3])
return {'OK', n[1]}
