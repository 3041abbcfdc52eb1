-- Add a delta to one rep's open load, never below zero (zero loads are deleted).
-- KEYS[1] loads hash, KEYS[2] decision hash when ARGV[3] names a journal field: an
-- assignment already recorded there is returned, not repeated (retried tasks).
-- ARGV: rep, delta, journal field or "", journal ttl ms.  Returns {load, replayed 0/1}.
local journal = ARGV[3]
if journal ~= "" then
  local seen = redis.call('HGET', KEYS[2], journal)
  if seen then return {tonumber(seen), 1} end
end
local load = (tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0) + tonumber(ARGV[2])
if load <= 0 then
  load = 0
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], load)
end
if journal ~= "" then
  redis.call('HSET', KEYS[2], journal, load)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {load, 0}
