-- Claims, atomically and in order: picks from pools (exactly the semantics of
-- worker.routing.state.choose) and direct assignments. A claim may be journaled under a
-- lead's decision hash: a claim already recorded there for the same target (pool, or rep)
-- is returned, not repeated, so a retried task never claims twice; one recorded for another
-- target (the retry went another way) is released and replaced. One call serves one pick
-- or a whole batch.
--
-- KEYS[1] loads hash (rep -> open load); KEYS[2..] pool hashes (s = sequence, last = the
-- latest rep served, r:<rep> = last served sequence, w:<rep> = smooth weighted score, cr:<rep> =
-- turns given back, served before the rotation in rr and wrr) and
-- decision hashes, referred to by index.
-- ARGV[1] journal ttl ms; ARGV[2] member set count, then each set: m, m members (pool order);
-- then the request count, then each request:
--   "p", journal key index (0 = none), journal field, pool key index, strategy (rr|wrr|ll|lw),
--        member set index (0 unless round robin), candidate count n,
--        n x (rep, weight, capacity or "-"), then caps (below); "lw" (least loaded with a pool's load
--        weights) has n x (rep, lead weight, capacity or "-", crm load) and compares
--        (lead weight x load + crm load) / capacity
--   "d", journal key index (0 = none), journal field, rep, then caps (below)
-- caps per period (worker.routing.caps): a count q, then q x (candidate number, 1-based (1 for "d"),
-- counter key index, limit, skip reason, expire at ms). A candidate whose counter has reached a
-- limit is skipped with that reason (after capacity); the chosen rep's counters are incremented
-- and expire at their time. The journal keeps the counters a claim incremented (q), so a claim
-- given back gives them back too.
-- Returns, per request: rep or "", load after the claim, replayed 0/1, skipped count f,
-- then f reps skipped: "rep" at capacity, "rep<TAB>reason" at a cap.

local ttl = ARGV[1]
local i = 3

local sets = {}
for s = 1, tonumber(ARGV[2]) do
  local m = tonumber(ARGV[i])
  local members, pos = {}, {}
  for k = 1, m do
    members[k] = ARGV[i + k]
    pos[members[k]] = k - 1
  end
  sets[s] = {members = members, pos = pos, m = m}
  i = i + 1 + m
end

local loads, loads_dirty = {}, {}
local function ensure_loads(reps)
  local missing = {}
  for _, rep in ipairs(reps) do
    if loads[rep] == nil then missing[#missing + 1] = rep; loads[rep] = 0 end
  end
  for s = 1, #missing, 500 do
    local e = math.min(s + 499, #missing)
    local raw = redis.call('HMGET', KEYS[1], unpack(missing, s, e))
    for k = s, e do loads[missing[k]] = tonumber(raw[k - s + 1]) or 0 end
  end
end
local function bump(rep)
  if loads[rep] == nil then -- not read yet: one HINCRBY, written already
    loads[rep] = redis.call('HINCRBY', KEYS[1], rep, 1)
  else
    loads[rep] = loads[rep] + 1
    loads_dirty[rep] = true
  end
  return loads[rep]
end

local counts = {} -- cap counters by key name, read once, kept current as the script counts
local function cap_count(name)
  local c = counts[name]
  if c == nil then
    c = tonumber(redis.call('GET', name)) or 0
    counts[name] = c
  end
  return c
end
local function cap_reached(quotas)
  for _, q in ipairs(quotas or {}) do
    if cap_count(KEYS[q[1]]) >= q[2] then return q[3] end
  end
  return nil
end
local taken -- the counters the current claim incremented
local function cap_take(quotas)
  for _, q in ipairs(quotas or {}) do
    local name = KEYS[q[1]]
    counts[name] = redis.call('INCR', name)
    redis.call('PEXPIREAT', name, q[4])
    taken[#taken + 1] = name
  end
end
local function cap_give_back(names)
  for _, name in ipairs(names or {}) do
    if (tonumber(redis.call('GET', name)) or 0) > 0 then redis.call('DECR', name) end
    counts[name] = nil
  end
end
local function read_caps(at)
  -- the caps section at ARGV[at]: returns quotas per candidate number and the section's size
  local q = tonumber(ARGV[at])
  local by = {}
  for k = 0, q - 1 do
    local j = at + 1 + 5 * k
    local c = tonumber(ARGV[j])
    by[c] = by[c] or {}
    by[c][#by[c] + 1] = {tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), ARGV[j + 3], tonumber(ARGV[j + 4])}
  end
  return by, 1 + 5 * q
end

local pools = {}
local function pool_state(idx)
  local p = pools[idx]
  if p == nil then
    p = {h = {}, dirty = {}}
    local flat = redis.call('HGETALL', KEYS[idx])
    for k = 1, #flat, 2 do p.h[flat[k]] = flat[k + 1] end
    pools[idx] = p
  end
  return p
end
local function pool_set(p, field, value)
  p.h[field] = value
  p.dirty[field] = true
end

local function pick(p, strategy, set, cands, weights, caps, quotas, extra)
  local out = {"", 0, 0}
  local n = #cands
  if n == 0 then return out end
  -- loads matter only for capacity checks and least loaded
  local need = strategy == 'll' or strategy == 'lw'
  for k = 1, n do need = need or caps[k] ~= nil end
  if need then ensure_loads(cands) end
  local open = {}
  for k = 1, n do
    local capped = nil
    if caps[k] ~= nil and loads[cands[k]] >= caps[k] then
      out[#out + 1] = cands[k]
    else
      capped = cap_reached(quotas[k])
      if capped then
        out[#out + 1] = cands[k] .. '\t' .. capped
      else
        open[#open + 1] = k
      end
    end
  end
  if #open == 0 then return out end
  local chosen
  if strategy ~= 'll' and strategy ~= 'lw' then
    -- a turn given back (a rejected lead with credit back: worker.steps.reject) is served first, in
    -- candidate order, outside the rotation
    for _, k in ipairs(open) do
      local owed = tonumber(p.h['cr:' .. cands[k]]) or 0
      if owed > 0 then
        pool_set(p, 'cr:' .. cands[k], owed - 1)
        out[1] = cands[k]
        out[2] = bump(cands[k])
        cap_take(quotas[k])
        return out
      end
    end
  end
  if strategy == 'rr' then
    -- the most recently served current member: 'last' whenever it is still a member,
    -- else the member with the highest last-served sequence
    local last = nil
    if p.h['last'] then last = set.pos[p.h['last']] end
    if last == nil then
      local best = 0
      last = -1
      for k = 1, set.m do
        local s = tonumber(p.h['r:' .. set.members[k]]) or 0
        if s > best then best, last = s, k - 1 end
      end
    end
    local bestd
    for _, k in ipairs(open) do
      local d = (set.pos[cands[k]] - last - 1) % set.m
      if bestd == nil or d < bestd then bestd, chosen = d, k end
    end
    local seq = (tonumber(p.h['s']) or 0) + 1
    pool_set(p, 's', seq)
    pool_set(p, 'last', cands[chosen])
    pool_set(p, 'r:' .. cands[chosen], seq)
  elseif strategy == 'wrr' then
    local scores, total, best = {}, 0, nil
    for _, k in ipairs(open) do
      scores[k] = (tonumber(p.h['w:' .. cands[k]]) or 0) + weights[k]
      total = total + weights[k]
      if best == nil or scores[k] > scores[best] then best = k end
    end
    chosen = best
    scores[best] = scores[best] - total
    for _, k in ipairs(open) do pool_set(p, 'w:' .. cands[k], string.format('%d', scores[k])) end
  else
    local default_cap = nil
    for _, k in ipairs(open) do
      if caps[k] ~= nil and caps[k] ~= 0 and (default_cap == nil or caps[k] > default_cap) then
        default_cap = caps[k]
      end
    end
    default_cap = default_cap or 1
    local best
    for _, k in ipairs(open) do
      local cap = caps[k]
      if cap == nil or cap == 0 then cap = default_cap end
      local ratio
      if strategy == 'lw' then
        ratio = (weights[k] * loads[cands[k]] + extra[k]) / cap
      else
        ratio = loads[cands[k]] / cap
      end
      if best == nil or ratio < best then best, chosen = ratio, k end
    end
  end
  out[1] = cands[chosen]
  out[2] = bump(cands[chosen])
  cap_take(quotas[chosen])
  return out
end

local function release(rep)
  ensure_loads({rep})
  loads[rep] = math.max(0, loads[rep] - 1)
  loads_dirty[rep] = true
end

local result = {}
local requests = tonumber(ARGV[i])
i = i + 1
for _ = 1, requests do
  local kind, jkey, jfield = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local width = (kind == 'p' and ARGV[i + 4] == 'lw') and 4 or 3
  local size = kind == 'p' and 7 + width * tonumber(ARGV[i + 6]) or 4
  local quotas, caps_size = read_caps(i + size)
  size = size + caps_size
  taken = {}
  local sig = kind == 'p' and ('p:' .. KEYS[tonumber(ARGV[i + 3])]) or ('d:' .. ARGV[i + 3])
  local out = nil
  if jkey > 0 then
    local seen = redis.call('HGET', KEYS[jkey], jfield)
    if seen then
      local rec = cjson.decode(seen)
      if rec.s == sig then
        out = rec.o
        out[3] = 1
      elseif rec.o[1] ~= '' then
        -- a retry that took another path (e.g. the state changed in between): the earlier
        -- claim no longer stands, so give its load (and its caps' counts) back before claiming anew
        release(rec.o[1])
        cap_give_back(rec.q)
      end
    end
  end
  if out == nil then
    if kind == 'p' then
      local n = tonumber(ARGV[i + 6])
      local cands, weights, caps, extra = {}, {}, {}, {}
      for k = 1, n do
        local j = i + 7 + width * (k - 1)
        cands[k], weights[k], caps[k] = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
        if width == 4 then extra[k] = tonumber(ARGV[j + 3]) end
      end
      out = pick(pool_state(tonumber(ARGV[i + 3])), ARGV[i + 4], sets[tonumber(ARGV[i + 5])], cands, weights, caps,
                 quotas, extra)
    else
      local capped = cap_reached(quotas[1])
      if capped then
        out = {'', 0, 0, ARGV[i + 3] .. '\t' .. capped}
      else
        out = {ARGV[i + 3], bump(ARGV[i + 3]), 0}
        cap_take(quotas[1])
      end
    end
    if jkey > 0 then
      local rec = {s = sig, o = out}
      if #taken > 0 then rec.q = taken end
      redis.call('HSET', KEYS[jkey], jfield, cjson.encode(rec))
      redis.call('PEXPIRE', KEYS[jkey], ttl)
    end
  end
  i = i + size
  result[#result + 1] = out[1]
  result[#result + 1] = out[2]
  result[#result + 1] = out[3]
  result[#result + 1] = #out - 3
  for k = 4, #out do result[#result + 1] = out[k] end
end

local args, zero = {}, {}
for rep in pairs(loads_dirty) do
  if loads[rep] > 0 then
    args[#args + 1] = rep
    args[#args + 1] = loads[rep]
  else
    zero[#zero + 1] = rep
  end
end
for s = 1, #args, 1000 do
  redis.call('HSET', KEYS[1], unpack(args, s, math.min(s + 999, #args)))
end
for s = 1, #zero, 1000 do
  redis.call('HDEL', KEYS[1], unpack(zero, s, math.min(s + 999, #zero)))
end
for idx, p in pairs(pools) do
  args = {}
  for field in pairs(p.dirty) do
    args[#args + 1] = field
    args[#args + 1] = p.h[field]
  end
  for s = 1, #args, 1000 do
    redis.call('HSET', KEYS[idx], unpack(args, s, math.min(s + 999, #args)))
  end
end
return result
