-- Remember, per company domain, the latest decision that gave a rep a lead from it (relationships:
-- recent_decision), and forget domains last seen before the keep window.
-- KEYS[1] hash domain -> "<at ms>|<rep>|<lead id>", KEYS[2] sorted set domain -> at ms.
-- ARGV[1] forget before (ms), then per domain: domain, at ms, rep, lead id. A later decision wins;
-- an older one (a replay, a batch out of order) changes nothing.
local n = 0
for i = 2, #ARGV, 4 do
  local at = tonumber(ARGV[i + 1])
  local seen = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[i]) or '-1')
  if at >= seen then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. '|' .. ARGV[i + 2] .. '|' .. ARGV[i + 3])
    redis.call('ZADD', KEYS[2], at, ARGV[i])
    n = n + 1
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 500)
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
return n
