-- Release (ARGV[2] = "") or extend (ARGV[2] = ttl ms) a lock, only for its owner.
-- KEYS[1] lock key.  ARGV: owner token, ttl ms or "".  Returns 1 if done, 0 if not the owner.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
