-- KEYS[1]: the customer's hash (rewards/keys.py customer). ARGV: the LINE user, the link's op, now (ms).
-- An imported member's customer link: made only while the customer is linked to nobody (or to this user
-- already); a customer linked to someone else is never moved by an import (rewards/imports.py).
-- Returns 'LINKED' (now) | 'SAME' (already this user's) | 'TAKEN' (someone else's: nothing written)
local user = redis.call('HGET', KEYS[1], 'user')
if user == ARGV[1] then return 'SAME' end
if user and user ~= '' then return 'TAKEN' end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'op', ARGV[2], 'prev', '', 'at', ARGV[3])
return 'LINKED'
