-- One failed sign-in against one counter (an account's or an address's): counted in a window; at the limit
-- the counter locks until now + lock_ms and starts again. One key, so one slot.
-- KEYS[1] the counter's hash {n, since, until}
-- ARGV now_ms, window_ms, limit, lock_ms
-- returns {failures in the window, locked until (0: not locked)}
local now, window, limit, lock = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
if now - since > window then
  redis.call('HSET', KEYS[1], 'n', 0, 'since', now)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local locked = 0
if n >= limit then
  locked = now + lock
  redis.call('HSET', KEYS[1], 'until', locked, 'n', 0, 'since', now)
end
redis.call('PEXPIRE', KEYS[1], window + lock)
return {n, locked}
