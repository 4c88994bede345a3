-- KEYS: the audit stream, the audit's op ids (hash op id -> stream entry id); one slot: the second key's
--       hash tag is the first key's name (rewards/keys.py AUDIT_OPS).
-- ARGV[1]: the op id; then the entry's fields and values, in pairs.
-- An audit entry once per operation: a retry of a step that was audited finds its op and writes nothing,
-- one that was not writes it now. The entry and its op id go together, so there is never one without the other.
-- Returns {1 written | 0 already there, the entry's id}
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then return {0, known} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('HSET', KEYS[2], ARGV[1], id)
return {1, id}
