-- KEYS: stream. ARGV: group, entry id
-- The event is handled: acknowledge it and drop it from the stream in one step, so a finished entry can
-- never be reclaimed (the intake's seen key keeps the same event from being queued again).
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
