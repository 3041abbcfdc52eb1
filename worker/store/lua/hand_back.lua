-- A rep handed a lead back (worker.steps.reject): once per rejected decision, give back the rep's
-- load and, with credit back, the counts its claims took against the rep's caps per period and a
-- turn in the pool it came from (claim.lua serves an owed turn, "cr:<rep>", before the rotation).
-- KEYS[1] the rejected decision's hash, KEYS[2] loads hash, KEYS[3] (optional) the pool's hash.
-- ARGV[1] rep, ARGV[2] credit back 1/0, ARGV[3] ttl ms for the decision hash if it has none.
-- Returns 1 the first time, 0 when this decision was handed back already.
if redis.call('HSETNX', KEYS[1], 'handed_back', ARGV[1]) == 0 then return 0 end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
end
if ARGV[2] == '1' then
  local fields = redis.call('HGETALL', KEYS[1])
  for f = 1, #fields, 2 do
    if string.match(fields[f], '^c:%d+$') then
      local claim = cjson.decode(fields[f + 1])
      if claim.o[1] == ARGV[1] then
        for _, name in ipairs(claim.q or {}) do
          if (tonumber(redis.call('GET', name)) or 0) > 0 then redis.call('DECR', name) end
        end
      end
    end
  end
  if #KEYS > 2 then redis.call('HINCRBY', KEYS[3], 'cr:' .. ARGV[1], 1) end
end
return 1
