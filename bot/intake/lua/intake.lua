-- KEYS: the partition's stream, then one "seen" key per event. ARGV: seen ttl (s), received at (ms), events (JSON)
-- An event id seen before is dropped here, so a redelivered webhook never queues an event twice.
-- Returns one character per event: "1" queued, "0" a duplicate (webhooks taken together share one call).
local queued = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 1], 'r', ARGV[2])
    queued[i - 1] = '1'
  else
    queued[i - 1] = '0'
  end
end
return table.concat(queued)
