-- Record leads' decisions, each for one epoch: the first one recorded wins and goes to the log
-- and, for the ledger, to the outbox, in this same step.
-- KEYS[1] decision log stream, KEYS[2] loads hash, KEYS[3] ledger outbox stream, then per lead its
-- decision hash and lease key.
-- ARGV[1] ttl ms, ARGV[2] log max length, then per lead: decision json, owner token (or ""),
-- lead, epoch, claims used ("" = unknown), and for the outbox what goes beside the decision
-- (json; "" = no outbox). Journaled claims c:n with n >= claims used were made by an earlier
-- attempt that died and went another way; their loads (and the cap counters they counted, q) are
-- given back when the decision is recorded.
-- Returns three values per lead: 1, "", entry id when this call recorded it (the caller has
-- the json) | 0, json, entry id when an earlier decision stands.
local out = {}
local function push(a, b, c)
  out[#out + 1] = a
  out[#out + 1] = b
  out[#out + 1] = c
end
local lead = 0
for k = 4, #KEYS, 2 do
  local dkey, lease = KEYS[k], KEYS[k + 1]
  local a = 3 + 6 * lead
  lead = lead + 1
  local json, token, used = ARGV[a], ARGV[a + 1], ARGV[a + 4]
  local d = redis.call('HMGET', dkey, 'd', 'id')
  if d[1] then
    push(0, d[1], d[2] or '')
  else
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
      'k', 'decision', 'lead', ARGV[a + 2], 'epoch', ARGV[a + 3], 'd', json)
    if used ~= '' then
      local n_used = tonumber(used)
      local fields = redis.call('HGETALL', dkey)
      for f = 1, #fields, 2 do
        local n = string.match(fields[f], '^c:(%d+)$')
        if n and tonumber(n) >= n_used then
          local claim = cjson.decode(fields[f + 1])
          local rep = claim.o[1]
          if rep ~= '' and tonumber(redis.call('HGET', KEYS[2], rep) or '0') > 0 then
            redis.call('HINCRBY', KEYS[2], rep, -1)
          end
          for _, name in ipairs(claim.q or {}) do
            if (tonumber(redis.call('GET', name)) or 0) > 0 then redis.call('DECR', name) end
          end
          redis.call('HDEL', dkey, fields[f])
        end
      end
    end
    if ARGV[a + 5] ~= '' then
      redis.call('XADD', KEYS[3], '*', 'lead', ARGV[a + 2], 'epoch', ARGV[a + 3], 'd', json, 'x', ARGV[a + 5])
    end
    redis.call('HSET', dkey, 'd', json, 'id', id)
    redis.call('PEXPIRE', dkey, ARGV[1])
    if token ~= '' and redis.call('GET', lease) == token then redis.call('DEL', lease) end
    push(1, '', id)
  end
end
return out
