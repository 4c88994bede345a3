-- The ledger, prepended to every script that changes points. All keys belong to one member ({uid}).
--
-- K: member hash, which is the ops hash (the member record's fields are '#' + an upper-case letter, named in
--    rewards/keys.py FIELDS and read here as F.points = spendable, F.pending_points = on hold, F.debt, …),
--    ops hash, which is also the ledger's entries, the lots and the caps: one key instead of four, since each
--    key costs ~100 bytes before its contents (a list ~190: docs/benchmarks.md). Its fields:
--      entry id (1, 2, …: digits only) -> the entry (compact, see encode(); append-only), an earning's lot in
--      front of it: "<lot>;<entry>" (every earning is a lot, lot id = entry id; see lot_get),
--      '#n' -> the last entry id (ids are 1, 2, … in the order written),
--      op id -> entry id (an op id is written once, with its entry; one starting with '#' or a digit is
--      stored as '##' .. op id, so it never reads as an entry, a cap or the queue),
--      '#c' .. rule|period -> points earned per rule per day/month/lifetime, for caps,
--      '#q' -> the lot queue: the ids of the spendable lots with points left, by expiry then id, joined by ','
--      (spending and expiry go oldest first). The expiries stay in the lots: a zset kept them a second time
--      and cost a key per member (~210 bytes, docs/benchmarks.md),
--    holdq zset (lots on hold, by the time they become spendable).
--    K's ledger, lots, lot queue and caps slots name the ops hash too (rewards/keys.py ledger_keys), so every
--    script's KEYS keep their places.
-- Invariant: points == sum(remaining of spendable lots) - debt; pending_points == sum(remaining of held lots).
local NEVER = 32503680000000 -- year 3000, in ms: a lot that does not expire

local function K(ks)
  return {member = ks[1], ledger = ks[2], ops = ks[3], lots = ks[4], lotq = ks[5], holdq = ks[6], caps = ks[7]}
end

-- the ops hash's field for an op id: '#' starts the lots', caps' and queue's fields and digits are the
-- entries', so an op id starting with either gets '##' (rewards/ledger_codec.py op_field)
local function opf(op)
  if string.find(op, '^[#%d]') then return '##' .. op end
  return op
end

local function num(key, field)
  return tonumber(redis.call('HGET', key, field) or '0')
end

-- HINCRBY by n; skipped for zero, because Lua writes -0 as "-0", which Redis refuses as an integer
local function incr(key, field, n)
  if n == 0 then return num(key, field) end
  return redis.call('HINCRBY', key, field, n)
end

local function int_or_blank(n)
  if n == 0 then return '' end
  return string.format('%d', n)
end

local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'

local function base36(n)
  if n == 0 then return '0' end
  local out = ''
  while n > 0 do
    local d = n % 36
    out = string.sub(B36, d + 1, d + 1) .. out
    n = (n - d) / 36
  end
  return out
end

-- A lot sits in its earning's entry field, in front of the entry: "<lot>;<entry>" (a field of its own cost
-- ~12 bytes more a lot: docs/benchmarks.md). The lot is "remaining|expires" or, while on hold,
-- "remaining|expires|hold_until"; a remaining of 0 is written blank (a spent lot stays, for ledger()'s
-- expires_at). expires is "+" .. the days after the entry's at in base 36 when it is a whole number of days
-- ("+a5": 365 days), else the time in base 36 (ms); hold_until is in base 36 (ms).
-- An entry field starts with a lot exactly when its first character is a digit, '-' or '|' (an entry whose
-- kind would start with one is written as JSON, which starts with '['). rewards/ledger_codec.py reads the same.
local DAY = 86400000

local function has_lot(raw)
  return raw ~= nil and string.find(raw, '^[-%d|]') ~= nil
end

-- the entry field's parts: lot text (or nil) and the entry
local function split_entry(raw)
  if not has_lot(raw) then return nil, raw end
  local semi = string.find(raw, ';', 1, true)
  return string.sub(raw, 1, semi - 1), string.sub(raw, semi + 1)
end

-- the entry's at (ms), nil when there is no entry yet
local function entry_at(entry)
  if entry == nil or entry == '' then return nil end
  if string.sub(entry, 1, 1) == '[' then return tonumber(cjson.decode(entry)[3]) end
  return tonumber(string.match(entry, '^[^|]*|[^|]*|(%w+)'), 36)
end

local function lot_text(lot, at)
  local exp = base36(lot.exp)
  if at and lot.exp >= at and (lot.exp - at) % DAY == 0 then exp = '+' .. base36((lot.exp - at) / DAY) end
  local raw = int_or_blank(lot.rem) .. '|' .. exp
  if lot.hold ~= 0 then raw = raw .. '|' .. base36(lot.hold) end
  return raw
end

local function lot_get(k, id)
  local text, entry = split_entry(redis.call('HGET', k.ledger, id) or nil)
  if not text then return nil end
  local rem, exp, hold = string.match(text, '^(-?%d*)|(%+?%w+)|?(%w*)$')
  if string.sub(exp, 1, 1) == '+' then exp = entry_at(entry) + tonumber(string.sub(exp, 2), 36) * DAY
  else exp = tonumber(exp, 36) end
  return {rem = tonumber(rem) or 0, exp = exp, hold = tonumber(hold, 36) or 0}
end

-- an earning's lot is set before its entry is written (the entry shows the balance after it): until then the
-- field holds the lot alone, "<lot>;", and write() puts the entry behind it
local function lot_set(k, id, lot)
  local _, entry = split_entry(redis.call('HGET', k.ledger, id) or nil)
  entry = entry or ''
  redis.call('HSET', k.ledger, id, lot_text(lot, entry_at(entry)) .. ';' .. entry)
end

-- the lot queue ('#q'), as a list of lot ids (strings), soonest expiry first. Stored joined by ',', a run of
-- three or more ids that follow each other (lots earned in a row, same expiry) as 'first-last': "2,3,5-8".
-- The ops hash stays a compact listpack only while every value is under hash-max-listpack-value (512 bytes):
-- runs keep a long-standing member's queue under it (rewards/ledger_codec.py queued reads the same).
local function queue_get(k)
  local ids = {}
  for part in string.gmatch(redis.call('HGET', k.lotq, '#q') or '', '[^,]+') do
    local first, last = string.match(part, '^(%d+)-(%d+)$')
    if first then
      for id = tonumber(first), tonumber(last) do ids[#ids + 1] = tostring(id) end
    else
      ids[#ids + 1] = part
    end
  end
  return ids
end

local function queue_set(k, ids)
  if #ids == 0 then return redis.call('HDEL', k.lotq, '#q') end
  local parts, i = {}, 1
  while i <= #ids do
    local j = i
    while j < #ids and tonumber(ids[j + 1]) == tonumber(ids[j]) + 1 do j = j + 1 end
    if j - i >= 2 then parts[#parts + 1] = ids[i] .. '-' .. ids[j]
    else for n = i, j do parts[#parts + 1] = ids[n] end end
    i = j + 1
  end
  redis.call('HSET', k.lotq, '#q', table.concat(parts, ','))
end

-- the lot's expiry for ordering the queue; a lot gone missing sorts first, so the next take drops it
local function queue_exp(k, id)
  local lot = lot_get(k, id)
  return lot and lot.exp or -1
end

-- a spendable lot into the queue, after every lot that expires before it (or with it, and a smaller id).
-- Lots usually expire in the order they were earned, so the walk from the end stops at once.
local function queue_add(k, id, exp)
  local ids, pos = queue_get(k), nil
  for i = #ids, 1, -1 do
    if ids[i] == tostring(id) then table.remove(ids, i) end
  end
  pos = #ids + 1
  while pos > 1 do
    local before = ids[pos - 1]
    local e = queue_exp(k, before)
    if e < exp or (e == exp and tonumber(before) < tonumber(id)) then break end
    pos = pos - 1
  end
  table.insert(ids, pos, tostring(id))
  queue_set(k, ids)
end

-- An entry is stored as one delimited string (rewards/ledger_codec.py reads the same):
--   kind|rule|at|delta|avail|pend|balance|pending|state|n|<n bytes of rare fields as JSON><note>
-- rule: '' when it equals kind, '~' .. rest when it starts with kind ('events.review' under 'event' is
-- '~s.review'), '!' .. rule when it would read as one of those, else as is. at: base 36 (ms). avail: ''
-- when it is delta - pend; pend and pending: '' when 0. state: one letter, '' when it is usual_state()'s.
-- n: the length of the rare fields' JSON (capped, reverses, written_off, lot), '' when none; the note is
-- the rest, so it may hold anything.
-- No id (the field's name), no op (the ops hash), no earning's expiry (its lot): about 30 bytes. Blank
-- fields at the end are left out.
-- An entry the string cannot hold (a '|' in kind or rule, a fraction) is written as the JSON array that
-- came before (a leading '['), which decode() still reads, so entries written before this format read too.
local STATE_CODE = {available = 'a', pending = 'p', done = 'd'}
local STATE_NAME = {a = 'available', p = 'pending', d = 'done'}
local RARE = {'capped', 'reverses', 'written_off', 'lot'}

-- the state most entries have, written blank: held points pending, other points in available, the rest done
-- (a capped earning of 0 points is the exception, written out)
local function usual_state(delta, pend)
  if pend > 0 then return 'p' end
  if delta > 0 then return 'a' end
  return 'd'
end
local function whole(x)
  return type(x) == 'number' and x == math.floor(x) and x > -1e15 and x < 1e15
end

local function short_rule(kind, rule)
  if rule == kind then return '' end
  if #rule > #kind and string.sub(rule, 1, #kind) == kind then return '~' .. string.sub(rule, #kind + 1) end
  local c = string.sub(rule, 1, 1)
  if rule == '' or c == '~' or c == '!' then return '!' .. rule end
  return rule
end

local function encode_json(e, rare, any)
  local row = {e.kind, e.rule, e.at, e.delta, e.avail, e.pend, e.balance, e.pending,
               STATE_CODE[e.state] or e.state, e.note or ''}
  if any then row[11] = rare end
  return cjson.encode(row)
end

local function encode(e)
  local rare, any = {}, false
  for _, f in ipairs(RARE) do
    if e[f] ~= nil then rare[f] = e[f]; any = true end
  end
  local kind, rule, state = e.kind, e.rule, STATE_CODE[e.state] or e.state
  if type(kind) ~= 'string' or type(rule) ~= 'string' or type(state) ~= 'string'
     or (e.note ~= nil and type(e.note) ~= 'string') then
    return encode_json(e, rare, any)
  end
  local plain = not (string.find(kind, '|', 1, true) or string.find(rule, '|', 1, true)
                     or string.find(state, '|', 1, true) or state == '' or string.find(kind, '^[%[%d|-]'))
  for _, x in ipairs({e.at, e.delta, e.avail, e.pend, e.balance, e.pending}) do
    if not whole(x) then plain = false end
  end
  if not plain or e.at < 0 then return encode_json(e, rare, any) end
  local rare_json = any and cjson.encode(rare) or ''
  local avail = (e.avail == e.delta - e.pend) and '' or string.format('%d', e.avail)
  if state == usual_state(e.delta, e.pend) then state = '' end
  local out = table.concat({kind, short_rule(kind, rule), base36(e.at), string.format('%d', e.delta), avail,
                             int_or_blank(e.pend), string.format('%d', e.balance), int_or_blank(e.pending),
                             state, any and tostring(#rare_json) or '', rare_json .. (e.note or '')}, '|')
  -- blank fields at the end are left out ('…|110' instead of '…|110||||'); balance is never blank, so
  -- this stops at it, and never cuts into a note (only a blank note is at the end)
  if rare_json .. (e.note or '') == '' then out = string.gsub(out, '|+$', '') end
  return out
end

local function decode(id, op, raw)
  if string.sub(raw, 1, 1) == '[' then
    local r = cjson.decode(raw)
    local e = {id = id, op = op, kind = r[1], rule = r[2], at = r[3], delta = r[4], avail = r[5], pend = r[6],
               balance = r[7], pending = r[8], state = STATE_NAME[r[9]] or r[9], note = r[10]}
    for f, v in pairs(r[11] or {}) do e[f] = v end
    return e
  end
  local f, pos = {}, 1
  for i = 1, 10 do
    local bar = string.find(raw, '|', pos, true)
    if not bar then -- the blank fields at the end are not written
      f[i] = string.sub(raw, pos)
      for j = i + 1, 10 do f[j] = '' end
      pos = #raw + 1
      break
    end
    f[i] = string.sub(raw, pos, bar - 1)
    pos = bar + 1
  end
  local kind, rule = f[1], f[2]
  local c = string.sub(rule, 1, 1)
  if rule == '' then rule = kind
  elseif c == '~' then rule = kind .. string.sub(rule, 2)
  elseif c == '!' then rule = string.sub(rule, 2) end
  local delta, pend = tonumber(f[4]), tonumber(f[6]) or 0
  local e = {id = id, op = op, kind = kind, rule = rule, at = tonumber(f[3], 36), delta = delta,
             avail = tonumber(f[5]) or (delta - pend), pend = pend, balance = tonumber(f[7]),
             pending = tonumber(f[8]) or 0}
  local state = (f[9] == '') and usual_state(delta, pend) or f[9]
  e.state = STATE_NAME[state] or state
  local n = tonumber(f[10]) or 0
  if n > 0 then
    for k, v in pairs(cjson.decode(string.sub(raw, pos, pos + n - 1))) do e[k] = v end
  end
  e.note = string.sub(raw, pos + n)
  return e
end

-- the id the next entry will get
local function next_id(k)
  return num(k.ledger, '#n') + 1
end

-- one ledger entry; e.avail and e.pend say how it moved the spendable and held balances
-- The entries sit in the ops hash under their ids, not in a list of their own: a list costs ~190 bytes a
-- member before its contents, a field's name ~3 bytes an entry (docs/benchmarks.md).
local function write(k, e)
  e.balance = num(k.member, F.points)
  e.pending = num(k.member, F.pending_points)
  e.id = redis.call('HINCRBY', k.ledger, '#n', 1)
  local raw = encode(e)
  local lot = lot_get(k, e.id) -- an earning's lot, set just before
  if lot then raw = lot_text(lot, entry_at(raw)) .. ';' .. raw end
  redis.call('HSET', k.ledger, e.id, raw)
  if e.op then redis.call('HSET', k.ops, opf(e.op), e.id) end
  return e.id
end

local function entry_of(k, op)
  local id = redis.call('HGET', k.ops, opf(op))
  if not id then return nil end
  local _, entry = split_entry(redis.call('HGET', k.ledger, id))
  return decode(tonumber(id), op, entry)
end

-- take `amount` from spendable lots, the given one first, then oldest expiry first; returns what it took
local function take(k, amount, first)
  local taken = 0
  local ids = queue_get(k)
  local gone = {} -- lot ids that leave the queue
  local function from(id)
    local lot = lot_get(k, id)
    if lot and lot.rem > 0 and lot.hold == 0 then
      local t = math.min(lot.rem, amount - taken)
      lot.rem = lot.rem - t
      lot_set(k, id, lot)
      if lot.rem == 0 then gone[tostring(id)] = true end
      taken = taken + t
    else -- a lot with nothing to give has no place in the queue
      gone[tostring(id)] = true
    end
  end
  if first then from(first) end
  for _, id in ipairs(ids) do
    if taken >= amount then break end
    if not gone[id] then from(id) end
  end
  local left = {}
  for _, id in ipairs(ids) do
    if not gone[id] then left[#left + 1] = id end
  end
  if #left < #ids then queue_set(k, left) end
  return taken
end

-- points into the spendable balance: they pay off any debt first
local function credit(k, id, lot, amount)
  local debt = num(k.member, F.debt)
  local repay = math.min(debt, amount)
  if repay > 0 then incr(k.member, F.debt, -repay) end
  lot.rem, lot.hold = amount - repay, 0
  lot_set(k, id, lot)
  if lot.rem > 0 then queue_add(k, id, lot.exp) end
  incr(k.member, F.points, amount)
end

-- Earn: a new lot. c = {op, amount, kind, rule, at, note, expires (ms or 0), hold_until (ms or 0), month, day,
-- caps = {day, month, life} (0 = none)}. Returns written (1, or 0 when the op is known), amount actually earned.
local function earn(k, c)
  if redis.call('HEXISTS', k.ops, opf(c.op)) == 1 then return 0, 0 end
  local amount = c.amount
  local caps = c.caps or {}
  local counters = {{'d:' .. c.day, caps.day or 0}, {'m:' .. c.month, caps.month or 0}, {'l', caps.life or 0}}
  for _, cap in ipairs(counters) do
    if cap[2] > 0 then
      amount = math.max(0, math.min(amount, cap[2] - num(k.caps, '#c' .. c.rule .. '|' .. cap[1])))
    end
  end
  for _, cap in ipairs(counters) do
    if cap[2] > 0 then incr(k.caps, '#c' .. c.rule .. '|' .. cap[1], amount) end
  end
  local exp = (c.expires and c.expires > 0) and c.expires or NEVER
  local held = c.hold_until and c.hold_until > c.at
  local e = {op = c.op, kind = c.kind, rule = c.rule, at = c.at, note = c.note or '', delta = amount,
             avail = held and 0 or amount, pend = held and amount or 0,
             state = held and 'pending' or 'available', capped = (amount < c.amount) and c.amount or nil}
  -- the entry id is the lot id: write the lot's balance move first so the entry shows the result
  local id = next_id(k)
  if held then
    lot_set(k, id, {rem = amount, exp = exp, hold = c.hold_until})
    redis.call('ZADD', k.holdq, c.hold_until, id)
    incr(k.member, F.pending_points, amount)
  else
    credit(k, id, {rem = 0, exp = exp, hold = 0}, amount)
  end
  incr(k.member, F.lifetime, amount)
  incr(k.member, F['earned:'] .. c.month, amount)
  redis.call('HSET', k.member, F.last_activity, c.at)
  write(k, e)
  return 1, amount
end

-- Spend: refused (-1) when fewer spendable points than asked (a debt makes the balance negative); 1 spent;
-- 0 the op is known.
local function spend(k, c)
  if redis.call('HEXISTS', k.ops, opf(c.op)) == 1 then return 0 end
  if num(k.member, F.points) < c.amount then return -1 end
  take(k, c.amount, nil)
  incr(k.member, F.points, -c.amount)
  redis.call('HSET', k.member, F.last_activity, c.at)
  write(k, {op = c.op, kind = c.kind, rule = c.rule, at = c.at, note = c.note or '', delta = -c.amount,
            avail = -c.amount, pend = 0, state = 'done'})
  return 1
end

-- Take points away without the owner's say (refund, void, staff correction): from the named lot first,
-- then oldest first; what no lot covers becomes debt (the balance goes below zero and the next earnings
-- pay it back), or with c.write_off is forgiven. Returns written, points taken.
local function deduct(k, c, lot_id)
  if redis.call('HEXISTS', k.ops, opf(c.op)) == 1 then return 0, 0 end
  local lot = lot_id and lot_get(k, lot_id)
  local pend = 0
  if lot and lot.hold > 0 then -- still on hold: it simply never becomes spendable
    pend = math.min(lot.rem, c.amount)
    lot.rem = lot.rem - pend
    lot_set(k, lot_id, lot)
    if lot.rem == 0 then redis.call('ZREM', k.holdq, lot_id) end
    incr(k.member, F.pending_points, -pend)
  end
  local avail = c.amount - pend
  local written_off = nil
  if avail > 0 then
    local taken = take(k, avail, lot_id)
    if taken < avail then
      if c.write_off then -- the shop's rules: what the balance cannot cover is forgiven, never a debt
        written_off, avail = avail - taken, taken
      else
        incr(k.member, F.debt, avail - taken)
      end
    end
    incr(k.member, F.points, -avail)
  end
  write(k, {op = c.op, kind = c.kind, rule = c.rule, at = c.at, note = c.note or '', delta = -(avail + pend),
            avail = -avail, pend = -pend, state = 'done', reverses = c.reverses, written_off = written_off})
  return 1, avail + pend
end

-- Reverse exactly what an earlier op earned (as much of it as is left to reverse).
local function reverse(k, original_op, c)
  local e = entry_of(k, original_op)
  if not e or e.delta <= 0 then return 0, 0 end
  c.amount, c.reverses = e.delta, original_op
  return deduct(k, c, e.id)
end

-- Held lots whose time has come become spendable. Returns points released.
local function release(k, now)
  local released = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k.holdq, '-inf', now)) do
    local lot = lot_get(k, id)
    redis.call('ZREM', k.holdq, id)
    if lot and lot.rem > 0 then
      local amount = lot.rem
      incr(k.member, F.pending_points, -amount)
      credit(k, id, lot, amount)
      write(k, {op = 'release:' .. id, kind = 'release', rule = 'hold', at = now, delta = 0, avail = amount,
                pend = -amount, state = 'done', lot = tonumber(id)})
      released = released + amount
    end
  end
  return released
end

-- Spendable lots past their expiry lose what is left. Returns points expired.
local function expire(k, now)
  local expired = 0
  local ids = queue_get(k)
  local stay = #ids + 1 -- the first queued lot that has not expired: it and all after it stay
  for i, id in ipairs(ids) do
    local lot = lot_get(k, id)
    if lot and lot.exp > now then stay = i; break end
    if lot and lot.rem > 0 then
      local amount = lot.rem
      lot.rem = 0
      lot_set(k, id, lot)
      incr(k.member, F.points, -amount)
      write(k, {op = 'expire:' .. id, kind = 'expire', rule = 'expiry', at = now, delta = -amount, avail = -amount,
                pend = 0, state = 'done', lot = tonumber(id)})
      expired = expired + amount
    end
  end
  if stay > 1 then
    local left = {}
    for i = stay, #ids do left[#left + 1] = ids[i] end
    queue_set(k, left)
  end
  return expired
end

-- the earliest time anything of this member's changes by itself (expiry or release), or false
local function next_due(k)
  local first = queue_get(k)[1]
  local lot = first and lot_get(k, first)
  local h = redis.call('ZRANGE', k.holdq, 0, 0, 'WITHSCORES')
  local due = false
  if lot and lot.exp < NEVER then due = lot.exp end
  if #h > 0 and (not due or tonumber(h[2]) < due) then due = tonumber(h[2]) end
  return due
end
