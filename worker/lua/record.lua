-- Record a lead's decision for one epoch: the first one wins and goes to the decision log.
-- KEYS[1] decision hash, KEYS[2] lease key, KEYS[3] decision log stream.
-- ARGV: decision json, owner token (or ""), ttl ms, log max length, lead, epoch.
-- Returns {1, json, entry id} when this call recorded it, {0, json, entry id} when an
-- earlier decision stands.
local d = redis.call('HMGET', KEYS[1], 'd', 'id')
if d[1] then return {0, d[1], d[2] or ''} end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
  'k', 'decision', 'lead', ARGV[5], 'epoch', ARGV[6], 'd', ARGV[1])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'id', id)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return {1, ARGV[1], id}
