-- KEYS: due zset, then per delivery: its hash, its owner's index. ARGV: now (ms), keep in the index (count),
-- then per delivery 6 values: id, url, body, headers (JSON), owner, type.
-- A delivery whose id exists already is left as it is (the same outcome emitted again, a retried call), so a
-- delivery is created once; returns one character per delivery: "1" created, "0" already there.
local out = {}
local n = (#KEYS - 1) / 2
for i = 1, n do
  local d, idx = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 2 + (i - 1) * 6
  if redis.call('EXISTS', d) == 1 then
    out[i] = '0'
  else
    redis.call('HSET', d, 'id', ARGV[a + 1], 'url', ARGV[a + 2], 'body', ARGV[a + 3], 'headers', ARGV[a + 4],
      'owner', ARGV[a + 5], 'type', ARGV[a + 6], 'created', ARGV[1], 'status', 'pending', 'attempts', 0,
      'next', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[a + 1])
    redis.call('ZADD', idx, ARGV[1], ARGV[a + 1])
    redis.call('ZREMRANGEBYRANK', idx, 0, -1 - tonumber(ARGV[2]))
    out[i] = '1'
  end
end
return table.concat(out)
