-- Let go of an attempt that decided nothing (a lead its pool holds): its lease and, unless a decision is
-- recorded, its journal of claims (the next attempt asks afresh), only for the lease's owner.
-- KEYS[1] decision hash, KEYS[2] lease key.  ARGV[1] owner token.  Returns 1 if let go, 0 if not the owner.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'd') == 0 then redis.call('DEL', KEYS[1]) end
return redis.call('DEL', KEYS[2])
