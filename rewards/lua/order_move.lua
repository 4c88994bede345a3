-- KEYS[1]: an order's owner (rewards/keys.py order_owner). ARGV: the owner it must have, the new owner.
-- An unattributed order ('c:<customer>') becomes the linked user's, or is dropped by a refund ('x:<customer>'):
-- whichever comes first wins, once. Returns the owner after the step (the new one, or whoever holds it).
local now = redis.call('GET', KEYS[1])
if now == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return now or ''
