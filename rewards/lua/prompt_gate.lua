-- KEYS[1]: the member's prompts hash (rewards/keys.py `prompts`).
-- ARGV: cause ("c:order:o-1", "o:remind"…), this ISO week, last ISO week, the weekly cap, may_start (1/0).
-- Lets a prompt through at most once per cause and at most `cap` causes per member per week, atomically, so two
-- prompts decided at the same moment cannot both take the last place. Returns:
--   OK      counted now: send it            AGAIN  counted before but not marked handed: send it again (same key)
--   DONE    handed to LINE before: nothing  SKIP   unknown cause and may_start = 0 (a repeat may resume, not start)
--   CAPPED  the week's cap is reached: nothing
local key, cause, week, last_week = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local cap, may_start = tonumber(ARGV[4]), ARGV[5] == '1'
local seen = redis.call('HGET', key, cause)
if seen then
  if string.sub(seen, -2) == ':d' then return 'DONE' end
  return 'AGAIN'
end
if not may_start then return 'SKIP' end
if redis.call('HGET', key, 'w') ~= week then
  -- a new week: the count starts again, and causes older than last week are forgotten (never the "o:" ones)
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local f, v = fields[i], fields[i + 1]
    local counted = string.sub(v, 1, -3)
    if string.sub(f, 1, 2) == 'c:' and counted ~= week and counted ~= last_week then redis.call('HDEL', key, f) end
  end
  redis.call('HSET', key, 'w', week, 'n', 0)
end
if tonumber(redis.call('HGET', key, 'n')) >= cap then return 'CAPPED' end
redis.call('HINCRBY', key, 'n', 1)
redis.call('HSET', key, cause, week .. ':h')
return 'OK'
