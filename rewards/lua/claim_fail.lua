-- Catalog (member's slot): the shop would not make a claim's discount code, so a pending claim is refused for
-- good even though its points were spent; `refund` marks that they are owed back (op `unclaim:{claim id}`,
-- written by the caller, once, and again on any later look at the claim until it is there).
-- Gives back the claim's place in the member's limit.
-- KEYS: claim, claimed counts. ARGV: reason, now (ms).
-- Returns 'REFUSED' (now or before) | 'DONE' (the code was made and written after all) | 'GONE'
local claim = KEYS[1]
local state = redis.call('HGET', claim, 'state')
if not state then return 'GONE' end
if state == 'done' then return 'DONE' end
if state == 'refused' then return 'REFUSED' end
if state == 'pending' then redis.call('HINCRBY', KEYS[2], redis.call('HGET', claim, 'reward'), -1) end
redis.call('HSET', claim, 'state', 'refused', 'reason', ARGV[1], 'refused_at', ARGV[2], 'refund', '1')
return 'REFUSED'
