-- KEYS: due zset, the delivery's hash. ARGV: id, now (ms), visibility (ms), claim token.
-- Claims one attempt: only while the delivery is due, its due time moves a visibility timeout on, so no other
-- sender takes it meanwhile; a sender that dies mid-attempt lets it come due again. Returns the delivery's
-- fields (HGETALL) when claimed, an empty list when not (another sender has it, or it is gone).
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return {} end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {}
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], 'claim', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
return redis.call('HGETALL', KEYS[2])
