-- Shared prelude, prepended to every script that writes points.
-- apply(): one ledger entry and its operation id, written together; a known op id is a no-op.
-- member: hash with points/lifetime/ledger_seq; ledger: list of JSON entries; ops: hash op id -> entry id.
local function apply(member, ledger, ops, op, delta, kind, rule, at, note, allow_negative)
  local prior = redis.call('HGET', ops, op)
  local points = tonumber(redis.call('HGET', member, 'points') or '0')
  if prior then return 0, points end
  if delta < 0 and not allow_negative and points + delta < 0 then return -1, points end
  local seq = redis.call('HINCRBY', member, 'ledger_seq', 1)
  points = redis.call('HINCRBY', member, 'points', delta)
  if delta > 0 then redis.call('HINCRBY', member, 'lifetime', delta) end
  redis.call('RPUSH', ledger, cjson.encode({id = seq, delta = delta, kind = kind, rule = rule, op = op,
                                             at = at, note = note, balance = points}))
  redis.call('HSET', ops, op, seq)
  return 1, points
end
