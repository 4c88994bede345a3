-- Catalog (reward's slot): codes the shop uploaded join the pool; a code uploaded before is skipped.
-- KEYS: code pool, every code ever uploaded. ARGV: the codes. Returns {codes added, codes in the pool}
local added = 0
for i = 1, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i])
    added = added + 1
  end
end
return {added, redis.call('LLEN', KEYS[1])}
