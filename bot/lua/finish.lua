-- KEYS: stream, done marker. ARGV: group, entry id, done ttl (s)
-- The event is handled: remember that, acknowledge it and drop it from the stream, in one step.
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
