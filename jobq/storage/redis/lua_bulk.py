"""The Lua text of bulk enqueue on Redis (``enqueue_many``, see :mod:`.lua`).

A job without a unique key needs none of the look-ups of the shared ``insert``
helper, so the script stores it with one ``HSET`` of its hash and gathers its
writes to the keys that many jobs share (``all``, ``status:pending``,
``pending:<q>``, ``ready:<q>`` or ``delayed:<q>``, ``expiring``, the ``queues``
and ``counts:<q>`` counters): those are made once per key, many members a call,
and the pools are woken once per queue. A job with a unique key goes through
``insert`` as one at a time would, after the gathered writes of the jobs before
it. The keys end as storing the jobs one at a time would leave them.

Rule: text only; imports nothing.
"""

from __future__ import annotations

ENQUEUE_MANY = r"""
-- ARGV[3]: one JSON array of all the jobs' fields (11 a job, as text; see
-- insert()); or, with ARGV[4], a JSON array of payloads, the 11 fields of one
-- job that each payload replaces the payload of. Returns a JSON array of ids.
local f = cjson.decode(ARGV[3])
local pl = ARGV[4] and cjson.decode(ARGV[4])
local function base(j) return pl and 0 or (j - 1) * 11 end
local function payload(j, b) return pl and pl[j] or f[b + 3] end
local out = {}
local sets, order, counts, ready = {}, {}, {}, {}
local function add(key, score, member)
  local s = sets[key]
  if not s then
    s = {}
    sets[key] = s
    order[#order + 1] = key
  end
  s[#s + 1] = score
  s[#s + 1] = member
end
-- Make the gathered writes: ZADD a few thousand members a call (under unpack's
-- limit), the counters once per queue, one wake-up per queue with a ready job.
local function flush()
  for _, key in ipairs(order) do
    local s = sets[key]
    for a = 1, #s, 7000 do
      redis.call('ZADD', key, unpack(s, a, math.min(a + 6999, #s)))
    end
  end
  for q, c in pairs(counts) do
    redis.call('HINCRBY', P .. 'queues', q, c)
    redis.call('HINCRBY', P .. 'counts:' .. q, 'pending', c)
  end
  for q in pairs(ready) do wake(q) end
  sets, order, counts, ready = {}, {}, {}, {}
end
-- The order key's first two parts, once per distinct priority and run_at.
local eprio, erun = {}, {}
local n = pl and #pl or #f / 11
local k = 1
while k <= n do
  local b = base(k)
  if f[b + 7] ~= '' then
    flush()
    for x = 1, 11 do ARGV[3 + x] = f[b + x] end
    ARGV[6] = payload(k, b)
    local id = insert(4)
    out[#out + 1] = id
    k = k + 1
  else
    -- A run of jobs without a unique key: ids from one INCRBY.
    local m = k
    while m < n and f[base(m + 1) + 7] == '' do m = m + 1 end
    local last = redis.call('INCRBY', P .. 'seq', m - k + 1)
    local first = last - (m - k)
    for j = k, m do
      b = base(j)
      local id = tostring(first + j - k)
      local q, prio, run_at = f[b + 1], f[b + 4], f[b + 6]
      if run_at == '' then run_at = NOW_S end
      local fields = {'id', id, 'queue', q, 'name', f[b + 2], 'payload', payload(j, b),
        'priority', prio, 'status', 'pending', 'attempts', '0', 'max_attempts', f[b + 5],
        'run_at', run_at, 'created_at', NOW_S, 'updated_at', NOW_S}
      if f[b + 8] ~= '' then
        fields[#fields + 1] = 'expires_at'; fields[#fields + 1] = f[b + 8]
        add(P .. 'expiring', f[b + 8], id)
      end
      if f[b + 9] ~= '' then
        fields[#fields + 1] = 'limit_key'; fields[#fields + 1] = f[b + 9]
      end
      redis.call('HSET', jk(id), unpack(fields))
      add(P .. 'all', id, id)
      counts[q] = (counts[q] or 0) + 1
      add(P .. 'pending:' .. q, run_at, id)
      local at = tonumber(run_at)
      if at <= NOW then
        local ep = eprio[prio]
        if not ep then ep = enc(-tonumber(prio)); eprio[prio] = ep end
        local er = erun[run_at]
        if not er then er = enc(at); erun[run_at] = er end
        add(P .. 'ready:' .. q, 0, ep .. er .. enc(tonumber(id)) .. id)
        ready[q] = true
      else
        add(P .. 'delayed:' .. q, run_at, id)
      end
      add(P .. 'status:pending', id, id)
      out[#out + 1] = id
    end
    k = m + 1
  end
end
flush()
return cjson.encode(out)
"""
"""``enqueue_many``: the jobs' fields as one JSON text in, their ids as one out."""
