-- Acknowledge a lead's SLA clock, once: close the timer, drop the owner's load, log it and append
-- its ledger events, all in this one step, or nothing when the clock is closed already.
-- KEYS[1] timers sorted set, KEYS[2] payload hash, KEYS[3] the owner's open-clock set,
-- KEYS[4] loads hash, KEYS[5] decision log stream, KEYS[6] ledger outbox stream.
-- ARGV[1] timer id, ARGV[2] owner rep, ARGV[3] log max length, ARGV[4] log kind, ARGV[5] lead,
-- ARGV[6] epoch, ARGV[7] log data json, then each ledger event json.
-- Returns 1 when this call closed the clock, else 0.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
local load = (tonumber(redis.call('HGET', KEYS[4], ARGV[2])) or 0) - 1
if load <= 0 then redis.call('HDEL', KEYS[4], ARGV[2]) else redis.call('HSET', KEYS[4], ARGV[2], load) end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', 'k', ARGV[4], 'lead', ARGV[5], 'epoch', ARGV[6], 'd', ARGV[7])
for i = 8, #ARGV do
  if ARGV[i] ~= '' then redis.call('XADD', KEYS[6], '*', 'e', ARGV[i]) end
end
return 1
