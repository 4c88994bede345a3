-- KEYS[1]: a hash. ARGV[1]: a text (an erased member's user id), ARGV[2]: what replaces it (their pseudonym).
-- Every field name and value holding the text gets it replaced (rewards/privacy.py): another member's ledger
-- (an op id `referral:<friend>`, an entry's note), a referrer's referrals, the audit's op ids. One key: one slot.
-- Returns the fields changed; run again it finds nothing and changes nothing.
local from, to = ARGV[1], ARGV[2]
local function replaced(s)
  local out, i = {}, 1
  while true do
    local j = string.find(s, from, i, true)
    if not j then
      out[#out + 1] = string.sub(s, i)
      return table.concat(out)
    end
    out[#out + 1] = string.sub(s, i, j - 1)
    out[#out + 1] = to
    i = j + #from
  end
end
local all = redis.call('HGETALL', KEYS[1])
local changed = 0
for i = 1, #all, 2 do
  local name, value = all[i], all[i + 1]
  local has_name = string.find(name, from, 1, true) ~= nil
  if has_name or string.find(value, from, 1, true) then
    if has_name then redis.call('HDEL', KEYS[1], name) end
    redis.call('HSET', KEYS[1], replaced(name), replaced(value))
    changed = changed + 1
  end
end
return changed
