-- KEYS: member, ledger, ops. ARGV: op, delta, kind, rule, at, note, allow_negative (0/1)
-- Returns {written (1 new, 0 replay, -1 refused), balance}
local written, points = apply(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4],
                              tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1')
return {written, points}
