-- Queue record ids for routing; an id already pending keeps its place and its first-seen meta.
-- KEYS[1] pending sorted set (score = due epoch seconds), KEYS[2] meta hash (id -> json).
-- ARGV: now, meta json, then the ids.  Returns how many ids were new.
local added = 0
for i = 3, #ARGV do
  added = added + redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i])
  redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[2])
end
return added
