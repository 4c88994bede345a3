-- KEYS: the job's hash. ARGV: field, value, field, value, ...
-- Writes the whole job only when no job has that id yet, so a create retried with the same id (a staff
-- confirm redelivered after a crash) finds the first job instead of making a second. Returns 1 when written.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
