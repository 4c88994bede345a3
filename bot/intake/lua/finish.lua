-- KEYS: stream, then the event's sent markers (all in the partition's slot). ARGV: group, entry id, marker TTL (s)
-- The event is handled: write its sent markers "done", acknowledge it and drop it from the stream, all in one
-- atomic step. So a finished entry can never be reclaimed (the intake's seen key keeps the same event from
-- being queued again), and there is no moment where the entry is finished but a marker is not yet "done"
-- (or the other way round): one round trip instead of a marker pipeline and then the finish.
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], 'done', 'EX', ARGV[3])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
