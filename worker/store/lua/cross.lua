-- Hand-off triggers: note each (lead, trigger)'s truth now and say which crossed from false to true and
-- fire. A crossing fires when the trigger never fired for the lead, or it may fire again (refire). While a
-- lead has a hand-off in progress its stored truths are left as they were, so a crossing seen meanwhile is
-- not used up: it fires when the poll sees the lead after that hand-off is done.
-- KEYS[1] hash lead id -> hand-off in progress (json), then KEYS[1 + i] the crossings hash of item i.
-- ARGV[1] ttl (s) of a crossings hash, then per item: lead id, trigger, now (0/1), initial (0/1: the truth
-- assumed when the lead was never seen, i.e. at its routing), refire (0/1), hand-off json.
-- Returns one 0/1 per item: 1 = it fired (and its hand-off is now in progress).
local out = {}
local ttl = tonumber(ARGV[1])
local item = 0
for i = 2, #ARGV, 6 do
  item = item + 1
  local state = KEYS[1 + item]
  local lead, trigger, now = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fired = 0
  if redis.call('HEXISTS', KEYS[1], lead) == 0 then
    local before = redis.call('HGET', state, trigger) or ARGV[i + 3]
    redis.call('HSET', state, trigger, now)
    redis.call('EXPIRE', state, ttl)
    if now == '1' and before == '0' then
      local n = tonumber(redis.call('HGET', state, trigger .. '#fired') or '0')
      if n == 0 or ARGV[i + 4] == '1' then
        redis.call('HINCRBY', state, trigger .. '#fired', 1)
        redis.call('HSET', KEYS[1], lead, ARGV[i + 5])
        fired = 1
      end
    end
  end
  out[item] = fired
end
return out
