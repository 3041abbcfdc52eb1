-- Move claimed timers to their next instant, unless someone closed them meanwhile (an ack).
-- KEYS[1] timers sorted set, KEYS[2] payload hash.
-- ARGV: timer id, due (epoch seconds), payload json ("" = keep the payload), repeated.
-- Returns how many were still open (and moved).
local n = 0
for i = 1, #ARGV, 3 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2]) end
    n = n + 1
  end
end
return n
