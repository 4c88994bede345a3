-- Catalog, step 1 of a confirm (member's slot): open -> pending, counting the claim against the member's
-- limit for the reward. Idempotent: a pending claim just goes on; done and refused are final.
-- KEYS: claim, claimed counts (reward id -> claims). ARGV: now (ms), per-member limit (0 = none), seconds to keep.
-- Returns {'GO'} | {'DONE'} | {'REFUSED', reason} | {'UNKNOWN_CLAIM'} | {'LIMIT_REACHED'}
local claim, counts = KEYS[1], KEYS[2]
local state = redis.call('HGET', claim, 'state')
if not state then return {'UNKNOWN_CLAIM'} end
if state == 'done' then return {'DONE'} end
if state == 'refused' then return {'REFUSED', redis.call('HGET', claim, 'reason')} end
if state == 'open' then
  if tonumber(redis.call('HGET', claim, 'expires_at')) <= tonumber(ARGV[1]) then return {'UNKNOWN_CLAIM'} end
  local reward = redis.call('HGET', claim, 'reward')
  local limit = tonumber(ARGV[2])
  if limit > 0 and tonumber(redis.call('HGET', counts, reward) or '0') >= limit then return {'LIMIT_REACHED'} end
  redis.call('HINCRBY', counts, reward, 1)
  redis.call('HSET', claim, 'state', 'pending', 'begun_at', ARGV[1])
  redis.call('EXPIRE', claim, ARGV[3])
end
return {'GO'}
