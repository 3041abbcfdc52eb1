-- Start deciding one lead at one epoch: the recorded decision if there is one, else a lease.
-- KEYS[1] decision hash, KEYS[2] lease key.  ARGV: owner token, lease ms.
-- Returns {"done", decision json, log entry id} | {"go", 1 if an earlier attempt's journal
-- is there else 0} | {"busy"}.
local d = redis.call('HMGET', KEYS[1], 'd', 'id')
if d[1] then return {'done', d[1], d[2] or ''} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) or redis.call('GET', KEYS[2]) == ARGV[1] then
  return {'go', redis.call('EXISTS', KEYS[1])}
end
return {'busy'}
