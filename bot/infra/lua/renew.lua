-- KEYS: lease. ARGV: owner, ttl (ms). Renew the lease only if `owner` holds it (never take a free one); 1 when renewed.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
