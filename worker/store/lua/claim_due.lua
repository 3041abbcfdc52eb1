-- Hand the timers due by now to this caller only; cost grows with what is due, not open.
-- KEYS[1] timers sorted set (score = due epoch seconds), KEYS[2] payload hash.
-- ARGV: now, limit, lease seconds ("" = remove on claim; else re-arm at now + lease so a
-- sweeper that dies mid-task does not lose the timer; the caller cancels or reschedules).
-- Returns a flat list: id, due, payload, id, due, payload ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
if #due == 0 then return {} end
local ids = {}
for i = 1, #due, 2 do ids[#ids + 1] = due[i] end
local out = {}
local lease = tonumber(ARGV[3])
for s = 1, #ids, 500 do
  local e = math.min(s + 499, #ids)
  local payloads = redis.call('HMGET', KEYS[2], unpack(ids, s, e))
  if lease then
    local args = {}
    for i = s, e do
      args[#args + 1] = string.format('%.17g', tonumber(ARGV[1]) + lease)
      args[#args + 1] = ids[i]
    end
    redis.call('ZADD', KEYS[1], unpack(args))
  else
    redis.call('ZREM', KEYS[1], unpack(ids, s, e))
    redis.call('HDEL', KEYS[2], unpack(ids, s, e))
  end
  for i = s, e do
    out[#out + 1] = ids[i]
    out[#out + 1] = due[2 * i]
    out[#out + 1] = payloads[i - s + 1] or ''
  end
end
return out
