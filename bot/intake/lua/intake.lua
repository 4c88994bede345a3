-- KEYS: the partition's stream, then one "seen" key per event. ARGV: seen ttl (s), received at (ms), events (JSON)
-- An event id seen before is dropped here, so a redelivered webhook never queues an event twice.
local added = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 1], 'r', ARGV[2])
    added = added + 1
  end
end
return added
