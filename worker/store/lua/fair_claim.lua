-- A performance_weighted pick under the pool's floor and cap, atomically: exactly the semantics of
-- worker.routing.fairness.choose_fair, plus the capacity check and load +1 of every pick. A pick may
-- be journaled under a lead's decision hash like claim.lua's (field c:<n>, {s = signature, o = out}):
-- a retry gets the recorded pick back; one recorded for another target is released and replaced.
--
-- KEYS[1] loads hash; KEYS[2] the pool hash (fair fields: fw window, fs picks so far, fq:<slot> the
-- ring of the last fw picks, fc:<rep> a rep's picks in it, fx:<rep> smooth weighted score, fe:<slot> the
-- open candidates of each pick in the ring (tab-separated), fn:<rep> how many of those picks a rep was open for);
-- KEYS[3] the decision hash (journal; the pool hash again when there is none); KEYS[4..] cap counters.
-- ARGV[1] journal ttl ms; ARGV[2] journal field ("" = none); ARGV[3] "pw:<window>:<floor count>:<cap count>:<scores>"
-- (scores: the smooth weighted round robin's namespace, one per rate key; "" = fx:<rep>);
-- ARGV[4] candidate count n, then n x (rep, weight, capacity or "-"), in candidate order; then the caps
-- per period (worker.routing.caps, as in claim.lua): a count q, then q x (candidate number, counter key
-- index, limit, skip reason, expire at ms). A candidate at a cap is skipped with its reason; the chosen
-- rep's counters are counted, and journaled so a claim given back gives them back.
-- Returns {rep or "", load, replayed 0/1, detail "#<pick number> <note>", then the reps skipped: "rep" at
-- capacity, "rep<TAB>reason" at a cap}.

local loads_key, pool = KEYS[1], KEYS[2]
local jkey = KEYS[3]
local ttl, jfield = ARGV[1], ARGV[2]
local sig = 'f:' .. pool

if jkey and jfield ~= '' then
  local seen = redis.call('HGET', jkey, jfield)
  if seen then
    local rec = cjson.decode(seen)
    if rec.s == sig then
      rec.o[3] = 1
      return rec.o
    end
    if rec.o[1] ~= '' then
      local left = (tonumber(redis.call('HGET', loads_key, rec.o[1])) or 0) - 1
      if left > 0 then redis.call('HSET', loads_key, rec.o[1], left) else redis.call('HDEL', loads_key, rec.o[1]) end
      for _, name in ipairs(rec.q or {}) do
        if (tonumber(redis.call('GET', name)) or 0) > 0 then redis.call('DECR', name) end
      end
    end
  end
end

local _, _, w, f, c, ns = string.find(ARGV[3], '^pw:(%d+):(%d+):(%d+):(.*)$')
local function score_field(rep)
  if ns == '' then return 'fx:' .. rep end
  return 'fx:' .. rep .. '\t' .. ns
end
local window, floor_n, cap_n = tonumber(w), tonumber(f), tonumber(c)
local n = tonumber(ARGV[4])
local quotas = {}
local at = 5 + 3 * n
for k = 0, tonumber(ARGV[at]) - 1 do
  local j = at + 1 + 5 * k
  local c = tonumber(ARGV[j])
  quotas[c] = quotas[c] or {}
  quotas[c][#quotas[c] + 1] = {KEYS[tonumber(ARGV[j + 1])], tonumber(ARGV[j + 2]), ARGV[j + 3], tonumber(ARGV[j + 4])}
end
local out = {'', 0, 0, ''}
local open = {}
for k = 1, n do
  local j = 5 + 3 * (k - 1)
  local rep, weight, cap = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local capped = nil
  if cap ~= nil and (tonumber(redis.call('HGET', loads_key, rep)) or 0) >= cap then
    out[#out + 1] = rep
  else
    for _, q in ipairs(quotas[k] or {}) do
      if capped == nil and (tonumber(redis.call('GET', q[1])) or 0) >= q[2] then capped = q[3] end
    end
    if capped then
      out[#out + 1] = rep .. '\t' .. capped
    else
      open[#open + 1] = {rep = rep, weight = weight, k = k}
    end
  end
end

local taken = {}
local function finish(result)
  if jkey and jfield ~= '' then
    redis.call('HSET', jkey, jfield, cjson.encode({s = sig, o = result, q = taken}))
    redis.call('PEXPIRE', jkey, ttl)
  end
  return result
end

if #open == 0 then return finish(out) end

-- a changed window starts afresh
if tonumber(redis.call('HGET', pool, 'fw')) ~= window then
  local fields = redis.call('HKEYS', pool)
  local gone = {}
  for _, name in ipairs(fields) do
    local p = string.sub(name, 1, 3)
    if p == 'fq:' or p == 'fc:' or p == 'fe:' or p == 'fn:' then gone[#gone + 1] = name end
  end
  for s = 1, #gone, 1000 do redis.call('HDEL', pool, unpack(gone, s, math.min(s + 999, #gone))) end
  redis.call('HSET', pool, 'fw', window, 'fs', 0)
end

local seq = (tonumber(redis.call('HGET', pool, 'fs')) or 0) + 1
local slot = 'fq:' .. (seq % window)
local eslot = 'fe:' .. (seq % window)
local oldest, left_open = nil, {}
if seq > window then
  oldest = redis.call('HGET', pool, slot)
  local was = redis.call('HGET', pool, eslot)
  if was and was ~= '' then
    for name in string.gmatch(was, '[^\t]+') do left_open[#left_open + 1] = name end
  end
end
local leaving = {}
for _, name in ipairs(left_open) do leaving[name] = true end

local counts, seen = {}, {}
for _, cand in ipairs(open) do
  counts[cand.rep] = tonumber(redis.call('HGET', pool, 'fc:' .. cand.rep)) or 0
  if cand.rep == oldest then counts[cand.rep] = counts[cand.rep] - 1 end
  seen[cand.rep] = tonumber(redis.call('HGET', pool, 'fn:' .. cand.rep)) or 0
  if leaving[cand.rep] then seen[cand.rep] = seen[cand.rep] - 1 end
end

local allowed, capped = {}, {}
for _, cand in ipairs(open) do
  if counts[cand.rep] < cap_n then allowed[#allowed + 1] = cand else capped[#capped + 1] = cand.rep end
end
local note = ''
if #capped > 0 then note = 'cap:' .. table.concat(capped, ',') end
if #allowed == 0 then
  allowed = open
  note = 'cap-waived'
end

local total, chosen, best_owed = 0, nil, nil
local scores = {}
for k, cand in ipairs(allowed) do
  scores[k] = (tonumber(redis.call('HGET', pool, score_field(cand.rep))) or 0) + cand.weight
  total = total + cand.weight
end
-- owed: the floor's share of the picks a candidate was open for, a few picks early (fairness.choose_fair);
-- first one open for the whole window, then the largest shortfall, then candidate order
for k, cand in ipairs(allowed) do
  local there = seen[cand.rep] + 1
  local ahead = math.min(window, there + #allowed - 1)
  local short = math.floor(floor_n * ahead / window) - counts[cand.rep]
  if short > 0 then
    local partial = 0
    if there < window then partial = 1 end
    if best_owed == nil or partial < best_owed[1] or (partial == best_owed[1] and short > best_owed[2]) then
      best_owed, chosen = {partial, short}, k
    end
  end
end
if chosen ~= nil then
  note = 'floor:' .. allowed[chosen].rep
else
  for k = 1, #allowed do
    if chosen == nil or scores[k] > scores[chosen] then chosen = k end
  end
end
scores[chosen] = scores[chosen] - total
for k, cand in ipairs(allowed) do
  redis.call('HSET', pool, score_field(cand.rep), string.format('%d', scores[k]))
end

local rep = allowed[chosen].rep
if oldest then
  local left = redis.call('HINCRBY', pool, 'fc:' .. oldest, -1)
  if left <= 0 then redis.call('HDEL', pool, 'fc:' .. oldest) end
end
redis.call('HINCRBY', pool, 'fc:' .. rep, 1)
for _, name in ipairs(left_open) do
  if redis.call('HINCRBY', pool, 'fn:' .. name, -1) <= 0 then redis.call('HDEL', pool, 'fn:' .. name) end
end
local present = {}
for _, cand in ipairs(open) do
  redis.call('HINCRBY', pool, 'fn:' .. cand.rep, 1)
  present[#present + 1] = cand.rep
end
redis.call('HSET', pool, slot, rep, eslot, table.concat(present, '\t'), 'fs', seq)

for _, q in ipairs(quotas[allowed[chosen].k] or {}) do
  redis.call('INCR', q[1])
  redis.call('PEXPIREAT', q[1], q[4])
  taken[#taken + 1] = q[1]
end
out[1] = rep
out[2] = redis.call('HINCRBY', loads_key, rep, 1)
local detail = '#' .. seq
if note ~= '' then detail = detail .. ' ' .. note end
out[4] = detail
return finish(out)
