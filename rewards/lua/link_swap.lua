-- KEYS[1]: a hash. ARGV: a field, the value it must hold, the value to put ('' deletes the field).
-- One idempotent step of a link moving (rewards/links.py): undo a link only while it still points where we think.
-- Returns 1 when the field now holds the new value (changed now or before), 0 when it held something else.
local now = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '' then
  if now == false then return 1 end
  if now ~= ARGV[2] then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
if now == ARGV[3] then return 1 end
if now ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
