-- KEYS: the job's hash. ARGV: op, now (ms), then per op:
--   start                         queued|scheduled -> running (started_at set once)
--   advance  batch sent failed    batch `batch` went out: counted once (only while it is next_batch);
--                                 the last batch finishes the job (done, or failed when nothing went out)
--   pause    reason               running -> paused
--   resume                        paused -> queued
--   cancel   reason               queued|scheduled|paused|running -> cancelled (a runner stops between batches)
--   fail     reason               queued|scheduled|paused|running -> failed (it cannot start, e.g. its segment)
-- Returns {status after, status before, next_batch}. Status and progress change only here, so a cancel
-- racing a batch's progress can neither be overwritten nor lose the count of a batch already sent.
local job, op, now = KEYS[1], ARGV[1], ARGV[2]
local before = redis.call('HGET', job, 'status')
if not before then return {'', '', 0} end
local status = before
if op == 'start' then
  if before == 'queued' or before == 'scheduled' then
    status = 'running'
    redis.call('HSET', job, 'status', status, 'reason', '')
    redis.call('HSETNX', job, 'started_at', now)
  end
elseif op == 'advance' then
  local batch = tonumber(ARGV[3])
  if tonumber(redis.call('HGET', job, 'next_batch') or '0') == batch then
    redis.call('HINCRBY', job, 'sent', ARGV[4])
    redis.call('HINCRBY', job, 'failed', ARGV[5])
    redis.call('HSET', job, 'next_batch', batch + 1)
    if before == 'running' then redis.call('HSET', job, 'reason', '') end  -- e.g. a retry after LINE was down
    if before == 'running' and batch + 1 >= tonumber(redis.call('HGET', job, 'batches') or '0') then
      local sent = tonumber(redis.call('HGET', job, 'sent'))
      local failed = tonumber(redis.call('HGET', job, 'failed'))
      status = (sent == 0 and failed > 0) and 'failed' or 'done'
      redis.call('HSET', job, 'status', status, 'finished_at', now)
    end
  end
elseif op == 'pause' then
  if before == 'running' then
    status = 'paused'
    redis.call('HSET', job, 'status', status, 'reason', ARGV[3])
  end
elseif op == 'resume' then
  if before == 'paused' then
    status = 'queued'
    redis.call('HSET', job, 'status', status, 'reason', '')
  end
elseif op == 'cancel' or op == 'fail' then
  if before == 'queued' or before == 'scheduled' or before == 'paused' or before == 'running' then
    status = (op == 'cancel') and 'cancelled' or 'failed'
    redis.call('HSET', job, 'status', status, 'reason', ARGV[3], 'finished_at', now)
  end
end
return {status, before, tonumber(redis.call('HGET', job, 'next_batch') or '0')}
