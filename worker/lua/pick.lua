-- The atomic final pick from a pool; mirrors worker.routing.state.choose() exactly.
-- KEYS[1] loads hash (rep -> open load), KEYS[2] pool hash (s = sequence, r:<rep> = last
-- served sequence, w:<rep> = smooth weighted score), KEYS[3] decision hash (journal) when
-- ARGV[2] names a journal field: a pick already recorded there is returned, not repeated.
-- ARGV: strategy (rr|wrr|ll), journal field or "", journal ttl ms, member count m,
--       m members in pool order, then per candidate: rep, weight, capacity ("" = no cap).
-- Returns {rep or "", load after pick, replayed 0/1, candidates skipped at capacity...}.
local journal = ARGV[2]
if journal ~= "" then
  local seen = redis.call('HGET', KEYS[3], journal)
  if seen then
    local out = cjson.decode(seen)
    out[3] = 1
    return out
  end
end

local strategy = ARGV[1]
local m = tonumber(ARGV[4])
local members, pos = {}, {}
for i = 1, m do
  members[i] = ARGV[4 + i]
  pos[members[i]] = i - 1
end
local cands, weights, caps = {}, {}, {}
local n = 0
for j = 5 + m, #ARGV, 3 do
  n = n + 1
  cands[n] = ARGV[j]
  weights[n] = tonumber(ARGV[j + 1])
  caps[n] = tonumber(ARGV[j + 2]) -- nil when no cap
end

local out = {"", 0, 0}
if n > 0 then
  local raw = redis.call('HMGET', KEYS[1], unpack(cands))
  local loads, open = {}, {}
  for i = 1, n do
    loads[i] = tonumber(raw[i]) or 0
    if caps[i] ~= nil and loads[i] >= caps[i] then
      out[#out + 1] = cands[i]
    else
      open[#open + 1] = i
    end
  end
  if #open > 0 then
    local chosen
    if strategy == 'rr' then
      local fields = {}
      for i = 1, m do fields[i] = 'r:' .. members[i] end
      local seqs = redis.call('HMGET', KEYS[2], unpack(fields))
      local best, last = 0, -1
      for i = 1, m do
        local s = tonumber(seqs[i]) or 0
        if s > best then best, last = s, i - 1 end
      end
      local bestd
      for _, i in ipairs(open) do
        local d = (pos[cands[i]] - last - 1) % m
        if bestd == nil or d < bestd then bestd, chosen = d, i end
      end
      local seq = redis.call('HINCRBY', KEYS[2], 's', 1)
      redis.call('HSET', KEYS[2], 'r:' .. cands[chosen], seq)
    elseif strategy == 'wrr' then
      local fields = {}
      for k, i in ipairs(open) do fields[k] = 'w:' .. cands[i] end
      local cur = redis.call('HMGET', KEYS[2], unpack(fields))
      local scores, total, best = {}, 0, nil
      for k, i in ipairs(open) do
        scores[k] = (tonumber(cur[k]) or 0) + weights[i]
        total = total + weights[i]
        if best == nil or scores[k] > scores[best] then best = k end
      end
      chosen = open[best]
      scores[best] = scores[best] - total
      local args = {}
      for k = 1, #open do
        args[#args + 1] = fields[k]
        args[#args + 1] = string.format('%d', scores[k])
      end
      redis.call('HSET', KEYS[2], unpack(args))
    else
      local default_cap = nil
      for _, i in ipairs(open) do
        if caps[i] ~= nil and caps[i] ~= 0 and (default_cap == nil or caps[i] > default_cap) then
          default_cap = caps[i]
        end
      end
      default_cap = default_cap or 1
      local best
      for _, i in ipairs(open) do
        local cap = caps[i]
        if cap == nil or cap == 0 then cap = default_cap end
        local ratio = loads[i] / cap
        if best == nil or ratio < best then best, chosen = ratio, i end
      end
    end
    out[1] = cands[chosen]
    out[2] = redis.call('HINCRBY', KEYS[1], cands[chosen], 1)
  end
end

if journal ~= "" then
  redis.call('HSET', KEYS[3], journal, cjson.encode(out))
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return out
