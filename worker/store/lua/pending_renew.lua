-- Move leased ids to a new due time, only those still held by the caller's lease.
-- A claim re-arms an id at `now + lease`; that score is the lease, so an id whose score
-- still equals the one this caller set is still its own (not routed, not given back, not
-- taken over by another drain after the lease ran out).
-- KEYS[1] pending sorted set. ARGV: new due (epoch seconds), then id, held-until pairs.
-- Returns the ids moved.
local moved = {}
for i = 2, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    moved[#moved + 1] = ARGV[i]
  end
end
return moved
