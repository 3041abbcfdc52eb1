-- Open a hand-off's routing epoch, once: the epoch counter's increment and the epoch noted with the
-- hand-off in progress happen together, so two workers finishing the same hand-off (or one that dies
-- between the two) never open two epochs for it.
-- KEYS[1] hash lead id -> hand-off in progress (json), KEYS[2] the lead's epoch counter.
-- ARGV[1] lead id, ARGV[2] ttl ms of the epoch counter, ARGV[3] the hand-off's json without its epoch,
-- up to (not including) its closing brace.
-- Returns the hand-off's epoch, or -1 when it is no longer in progress (another worker finished it).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return -1 end
local epoch = cjson.decode(raw)['epoch']
if epoch then return tonumber(epoch) end
epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ',"epoch":' .. epoch .. '}')
return epoch
