-- Add a delta to one rep's open load, never below zero (a zero load is deleted).
-- KEYS[1] loads hash.  ARGV: rep, delta.  Returns the new load.
local load = (tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0) + tonumber(ARGV[2])
if load <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], load)
return load
