-- KEYS[1]: one experiment's people hash, KEYS[2]: its counters (rewards/keys.py experiment, experiment_counts).
-- ARGV[1]: JSON {what, arm, user (the referrer), friend, metric, yen, points, replace}
--   expose:     record `user` in `arm` unless an arm is recorded already (replace: the recorded arm is gone from
--               the rules); returns the arm recorded
--   count:      the arm's `metric` (invites_shown, shares) + 1
--   attributed: once per friend: the arm's attributions, and `yen` (the coupon's face value) to the referrer's cost
--   completed:  once per friend attributed in the experiment: completions, points, `yen` to the referrer's cost
-- Besides the totals, each referrer's friends (x) and cost (k) and the arm's sums of x², k², k·x, for the delta
-- method of the report (rewards/experiment_stats.py). Returns the arm (expose) or 1 counted / 0 already.
local h, counts = KEYS[1], KEYS[2]
local c = cjson.decode(ARGV[1])
local function metric(name) return c.arm .. ':' .. name end
if c.what == 'expose' then
  local field = 'u:' .. c.user
  if c.replace then
    redis.call('HSET', h, field, c.arm)
  elseif redis.call('HSETNX', h, field, c.arm) == 0 then
    return redis.call('HGET', h, field)
  end
  redis.call('HINCRBY', counts, metric('referrers'), 1)
  return c.arm
end
if c.what == 'count' then
  redis.call('HINCRBY', counts, metric(c.metric), 1)
  return 1
end
local seen = redis.call('HGET', h, 'f:' .. c.friend)
local friends = 0
if c.what == 'attributed' then
  if seen then return 0 end
  redis.call('HINCRBY', counts, metric('attributions'), 1)
  if c.yen > 0 then redis.call('HINCRBYFLOAT', counts, metric('coupon_yen'), c.yen) end
elseif c.what == 'completed' then
  if seen ~= 'a' then return 0 end -- never counted as attributed here (or already completed)
  friends = 1
  redis.call('HINCRBY', counts, metric('completions'), 1)
  redis.call('HINCRBY', counts, metric('points'), c.points)
else
  return redis.error_reply('ERR unknown what ' .. tostring(c.what))
end
redis.call('HSET', h, 'f:' .. c.friend, c.what == 'completed' and 'c' or 'a')
local x0 = tonumber(redis.call('HGET', h, 'x:' .. c.user) or '0')
local k0 = tonumber(redis.call('HGET', h, 'k:' .. c.user) or '0')
local x1, k1 = x0 + friends, k0 + c.yen
if friends == 1 and x0 == 0 then redis.call('HINCRBY', counts, metric('converters'), 1) end
redis.call('HSET', h, 'x:' .. c.user, x1, 'k:' .. c.user, tostring(k1))
redis.call('HINCRBYFLOAT', counts, metric('cost'), c.yen)
redis.call('HINCRBYFLOAT', counts, metric('sxx'), x1 * x1 - x0 * x0)
redis.call('HINCRBYFLOAT', counts, metric('skk'), k1 * k1 - k0 * k0)
redis.call('HINCRBYFLOAT', counts, metric('skx'), k1 * x1 - k0 * x0)
return 1
