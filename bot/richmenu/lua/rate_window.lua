-- KEYS: a zset of calls (score = time in ms). ARGV: now (ms), window (ms), limit, call id.
-- A sliding-window counter: take one call if fewer than `limit` were made in the window.
-- Returns {1, calls now in the window} when taken, {0, time (ms) the oldest call leaves the window} when not.
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local made = redis.call('ZCARD', KEYS[1])
if made >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return {1, made + 1}
