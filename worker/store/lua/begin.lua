-- Start deciding leads at their epochs: each lead's recorded decision if there is one, else a lease.
-- KEYS: per lead, its decision hash and its lease key.  ARGV: owner token, lease ms.
-- Returns three values per lead: "done", decision json, log entry id | "go", 1 if an earlier
-- attempt's journal is there else 0, "" | "busy", "", "".
local out = {}
local function push(a, b, c)
  out[#out + 1] = a
  out[#out + 1] = b
  out[#out + 1] = c
end
for i = 1, #KEYS, 2 do
  local d = redis.call('HMGET', KEYS[i], 'd', 'id')
  if d[1] then
    push('done', d[1], d[2] or '')
  elseif redis.call('SET', KEYS[i + 1], ARGV[1], 'NX', 'PX', ARGV[2]) or redis.call('GET', KEYS[i + 1]) == ARGV[1] then
    push('go', redis.call('EXISTS', KEYS[i]), '')
  else
    push('busy', '', '')
  end
end
return out
