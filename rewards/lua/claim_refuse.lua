-- Catalog (member's slot): a pending claim is refused for good, unless its points were already spent
-- (then it must complete instead). Gives back the claim's place in the member's limit.
-- KEYS: claim, claimed counts, the member's ops hash. ARGV: reason, the spend's op id, now (ms).
-- Returns 'REFUSED' (now or before) | 'DONE' | 'SPENT' | 'GONE' (no such claim any more)
local claim = KEYS[1]
local state = redis.call('HGET', claim, 'state')
if not state then return 'GONE' end
if state == 'done' then return 'DONE' end
if state == 'refused' then return 'REFUSED' end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return 'SPENT' end
if state == 'pending' then redis.call('HINCRBY', KEYS[2], redis.call('HGET', claim, 'reward'), -1) end
redis.call('HSET', claim, 'state', 'refused', 'reason', ARGV[1], 'refused_at', ARGV[3])
return 'REFUSED'
