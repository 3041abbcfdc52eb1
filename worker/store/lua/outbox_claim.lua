-- Claim a batch of ledger events from the outbox for one mover, with a lease.
-- KEYS[1] outbox stream.  ARGV[1] consumer group, ARGV[2] consumer, ARGV[3] lease ms, ARGV[4] limit.
-- First the entries claimed longer ago than the lease (a mover that died or gave them back),
-- then entries never claimed, oldest first; each stays claimed (pending) until it is acknowledged.
-- Returns entry id, its fields as a flat list, repeated.
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')  -- BUSYGROUP when it exists: fine
local limit = tonumber(ARGV[4])
local out = {}
local n = 0
local function take(entries)
  for i = 1, #entries do
    local entry = entries[i]
    if type(entry) == 'table' and type(entry[2]) == 'table' then
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2]
      n = n + 1
    end
  end
end
local stale = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', limit)
take(stale[2])
if n < limit then
  local fresh = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', limit - n, 'STREAMS', KEYS[1], '>')
  if type(fresh) == 'table' and fresh[1] then take(fresh[1][2]) end
end
return out
