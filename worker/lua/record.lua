-- Record a lead's decision for one epoch: the first one wins and goes to the decision log.
-- KEYS[1] decision hash, KEYS[2] lease key, KEYS[3] decision log stream, KEYS[4] loads hash.
-- ARGV: decision json, owner token (or ""), ttl ms, log max length, lead, epoch, claims used
-- ("" = unknown). Journaled claims c:n with n >= claims used were made by an earlier attempt
-- that died and went another way; their loads are given back when the decision is recorded.
-- Returns {1, "", entry id} when this call recorded it (the caller has the json), {0, json, entry id} when an
-- earlier decision stands.
local d = redis.call('HMGET', KEYS[1], 'd', 'id')
if d[1] then return {0, d[1], d[2] or ''} end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
  'k', 'decision', 'lead', ARGV[5], 'epoch', ARGV[6], 'd', ARGV[1])
if ARGV[7] ~= nil and ARGV[7] ~= '' then
  local used = tonumber(ARGV[7])
  local fields = redis.call('HGETALL', KEYS[1])
  for f = 1, #fields, 2 do
    local n = string.match(fields[f], '^c:(%d+)$')
    if n and tonumber(n) >= used then
      local rep = cjson.decode(fields[f + 1]).o[1]
      if rep ~= '' and tonumber(redis.call('HGET', KEYS[4], rep) or '0') > 0 then
        redis.call('HINCRBY', KEYS[4], rep, -1)
      end
      redis.call('HDEL', KEYS[1], fields[f])
    end
  end
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'id', id)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return {1, '', id}
