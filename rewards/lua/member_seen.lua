-- KEYS: member, and optionally a hash in the member's slot whose 'step' field to read along (the caller's
-- pending conversation step). ARGV: user id (not stored: the key names it), via
-- (follow|unblock|unfollow|message|postback|purchase), at (ms), language
-- 'blocked' (F.blocked) is there only while the member blocks us ('1'): a field for the usual case costs every member
-- ~11 bytes (docs/benchmarks.md).
-- The first sighting is kept forever: how someone was first seen decides whether they can be referred.
-- Returns {1 when this sighting created the member else 0, the language to speak (own choice, else the LINE
-- app's, else false), KEYS[2]'s step (else false)}: the worker needs all of them for every event, so one
-- round trip gives them.
-- "Created" is 1 again when the same sighting (same via, same time) is made again: an event handled again
-- after a failure half-way must finish what its first try began for a new member (list them, save their
-- LINE language), and not take them for someone already known.
local m = KEYS[1]
local via, at = ARGV[2], ARGV[3]
local created = 0
local first = redis.call('HMGET', m, F.first_seen_via, F.first_seen_at)
if not first[1] then
  redis.call('HSET', m, F.first_seen_at, at, F.first_seen_via, via)
  if via == 'follow' then redis.call('HSET', m, F.followed_at, at) end
  created = 1
elseif first[1] == via and first[2] == at then
  created = 1
end
if via == 'follow' or via == 'unblock' then
  redis.call('HDEL', m, F.blocked)
  redis.call('HSET', m, F.last_follow_at, at)
elseif via == 'unfollow' then
  redis.call('HSET', m, F.blocked, 1, F.blocked_at, at)
end
-- for "last active" segments; a purchase shows in the ledger's last_activity, and its replay changes nothing
if via ~= 'purchase' then redis.call('HSET', m, F.last_seen_at, at) end
if ARGV[4] ~= '' then redis.call('HSETNX', m, F.lang, ARGV[4]) end
local lang = redis.call('HMGET', m, F.lang_pref, F.lang)
local step = false
if KEYS[2] then step = redis.call('HGET', KEYS[2], 'step') end
return {created, lang[1] or lang[2], step}
