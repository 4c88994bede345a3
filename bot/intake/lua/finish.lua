-- KEYS: stream, then the finished events' sent markers (all in the partition's slot).
-- ARGV: group, marker TTL (s), then the finished entry ids.
-- The events are handled: write their sent markers "done", acknowledge them and drop them from the stream,
-- all in one atomic step. So a finished entry can never be reclaimed (the intake's seen key keeps the same
-- event from being queued again), and there is no moment where an entry is finished but a marker is not yet
-- "done" (or the other way round). Entries that finish together share the call (bot/intake/worker.py).
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], 'done', 'EX', ARGV[2])
end
local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return #ids
