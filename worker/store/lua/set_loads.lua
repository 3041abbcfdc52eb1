-- Replace every rep's open load at once (a reconciliation against the CRM).
-- KEYS[1] loads hash. ARGV: rep, load, rep, load ... (already clamped at zero, zeros omitted).
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return #ARGV / 2
