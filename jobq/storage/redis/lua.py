"""The Lua text of the Redis backend's scripts: the shared helpers, and one script per
change of state, each run atomically by the server (see :mod:`jobq.storage.redis`).

Every script takes ``ARGV[1]``, the key prefix, and ``ARGV[2]``, the time: epoch
seconds as text, or ``""`` to read the server's clock (``TIME``). Numbers go in and
out as text (``%.17g``, which round-trips a double exactly); a missing hash field
is None.

Rule: text only; imports nothing.
"""

from __future__ import annotations

HELPERS = r"""
local P = ARGV[1]
local NOW, NOW_S
if ARGV[2] == '' then
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000
  NOW_S = string.format('%.17g', NOW)
else
  NOW_S = ARGV[2]
  NOW = tonumber(NOW_S)
end
local function num(x) return string.format('%.17g', x) end
local function jk(id) return P .. 'job:' .. id end
-- A double as 8 bytes whose byte order is the numbers' order.
local function enc(x)
  local s = struct.pack('>d', x)
  local b = string.byte(s, 1)
  if b >= 128 then
    local t = {}
    for i = 1, 8 do t[i] = string.char(255 - string.byte(s, i)) end
    return table.concat(t)
  end
  return string.char(b + 128) .. string.sub(s, 2)
end
-- The member of a queue's ready set: priority (highest first), run_at, id.
local function order_key(prio, run_at, id)
  return enc(-tonumber(prio)) .. enc(tonumber(run_at)) .. enc(tonumber(id)) .. id
end
local function recount(q, old, new, id)
  if old then
    redis.call('HINCRBY', P .. 'counts:' .. q, old, -1)
    redis.call('ZREM', P .. 'status:' .. old, id)
  end
  if new then
    redis.call('HINCRBY', P .. 'counts:' .. q, new, 1)
    redis.call('ZADD', P .. 'status:' .. new, id, id)
  end
end
-- Put a pending job where claims find it: ready when due, else delayed.
local function enqueue_at(id, q, prio, run_at_s)
  local run_at = tonumber(run_at_s)
  redis.call('ZADD', P .. 'pending:' .. q, run_at_s, id)
  if run_at <= NOW then
    redis.call('ZADD', P .. 'ready:' .. q, 0, order_key(prio, run_at, id))
  else
    redis.call('ZADD', P .. 'delayed:' .. q, run_at_s, id)
  end
end
-- Take a pending job out of its queue's sets.
local function unqueue(id, q, prio, run_at_s)
  redis.call('ZREM', P .. 'pending:' .. q, id)
  if redis.call('ZREM', P .. 'delayed:' .. q, id) == 0 then
    redis.call('ZREM', P .. 'ready:' .. q, order_key(prio, run_at_s, id))
  end
end
-- Move the due jobs of the delayed set to the ready set.
local function promote(q)
  local delayed = P .. 'delayed:' .. q
  while true do
    local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', NOW_S, 'LIMIT', 0, 500)
    if #due == 0 then return end
    for _, id in ipairs(due) do
      local h = redis.call('HMGET', jk(id), 'priority', 'run_at')
      redis.call('ZADD', P .. 'ready:' .. q, 0, order_key(h[1], h[2], id))
      redis.call('ZREM', delayed, id)
    end
  end
end
-- Free the unique key a job held (if it still holds it).
local function free_key(id, name, key)
  if key then
    local k = P .. 'uniq:' .. name .. '\0' .. key
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
end
-- Count a job of task ``name`` (and limit key) into or out of processing.
local function running(name, limit_key, delta)
  redis.call('HINCRBY', P .. 'running', name, delta)
  local group = limit_key and ('+' .. limit_key) or '-'
  redis.call('HINCRBY', P .. 'running', name .. '\0' .. group, delta)
end
-- End a job (status: completed, failed or cancelled), from pending or processing.
local function finish(id, h, status)
  local old = h.status
  if old == 'pending' then unqueue(id, h.queue, h.priority, h.run_at) end
  if old == 'processing' then
    redis.call('ZREM', P .. 'processing', id)
    running(h.name, h.limit_key, -1)
  end
  redis.call('HSET', jk(id), 'status', status, 'finished_at', NOW_S, 'updated_at', NOW_S)
  redis.call('HDEL', jk(id), 'lease_expires_at')
  redis.call('ZADD', P .. 'finished:' .. status, NOW_S, id)
  redis.call('ZREM', P .. 'expiring', id)
  recount(h.queue, old, status, id)
  free_key(id, h.name, h.unique_key)
end
-- Back to pending at run_at_s, from processing.
local function requeue(id, h, run_at_s)
  redis.call('ZREM', P .. 'processing', id)
  running(h.name, h.limit_key, -1)
  redis.call('HSET', jk(id), 'status', 'pending', 'run_at', run_at_s, 'updated_at', NOW_S)
  redis.call('HDEL', jk(id), 'lease_expires_at', 'finished_at')
  enqueue_at(id, h.queue, h.priority, run_at_s)
  recount(h.queue, 'processing', 'pending', id)
end
-- Epoch seconds as UTC text, 1970-01-12T13:47:40Z (days to a civil date: H. Hinnant).
local function utc(t)
  local secs = math.floor(t)
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d, math.floor(rem / 3600),
    math.floor(rem % 3600 / 60), rem % 60)
end
local function load(id)
  local flat = redis.call('HGETALL', jk(id))
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
-- The job if its lease is held with this token, else nil.
local function held(id, token)
  local h = load(id)
  if h and h.status == 'processing' and h.lease_token == token then return h end
  return nil
end
-- Store the job whose 11 fields start at ARGV[i] (queue, name, payload, priority,
-- max_attempts, run_at, unique_key, expires_at, limit_key, on_duplicate, throttle;
-- '' for None), or apply its unique key's policy. Returns id, created, replaced.
local function insert(i)
  local q, name, payload, prio = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local run_at = ARGV[i + 5]
  if run_at == '' then run_at = NOW_S end
  local key = ARGV[i + 6]
  local id, created, replaced = nil, '1', '0'
  local holder_key = nil
  if key ~= '' and ARGV[i + 10] ~= '' then
    -- Throttled: the newest job of this task and key, if created within the window.
    local last = redis.call('GET', P .. 'last:' .. name .. '\0' .. key)
    local made = last and redis.call('HGET', jk(last), 'created_at')
    if made and tonumber(made) > NOW - tonumber(ARGV[i + 10]) then return last, '0', '0' end
  end
  if key ~= '' then
    holder_key = P .. 'uniq:' .. name .. '\0' .. key
    local holder = redis.call('GET', holder_key)
    if holder then
      local h = load(holder)
      if ARGV[i + 9] ~= 'replace' then return holder, '0', '0' end
      if h.status == 'pending' then
        unqueue(holder, h.queue, h.priority, h.run_at)
        redis.call('HSET', jk(holder), 'payload', payload, 'priority', prio, 'run_at', run_at,
          'updated_at', NOW_S)
        enqueue_at(holder, h.queue, prio, run_at)
        return holder, '0', '1'
      end
      redis.call('HDEL', jk(holder), 'unique_key')  -- processing: it runs on, keyless
    end
  end
  id = tostring(redis.call('INCR', P .. 'seq'))
  local fields = {'id', id, 'queue', q, 'name', name, 'payload', payload, 'priority', prio,
    'status', 'pending', 'attempts', '0', 'max_attempts', ARGV[i + 4], 'run_at', run_at,
    'created_at', NOW_S, 'updated_at', NOW_S}
  if key ~= '' then
    table.insert(fields, 'unique_key'); table.insert(fields, key)
    redis.call('SET', holder_key, id)
    redis.call('SET', P .. 'last:' .. name .. '\0' .. key, id)
  end
  if ARGV[i + 7] ~= '' then
    table.insert(fields, 'expires_at'); table.insert(fields, ARGV[i + 7])
    redis.call('ZADD', P .. 'expiring', ARGV[i + 7], id)
  end
  if ARGV[i + 8] ~= '' then
    table.insert(fields, 'limit_key'); table.insert(fields, ARGV[i + 8])
  end
  redis.call('HSET', jk(id), unpack(fields))
  redis.call('ZADD', P .. 'all', id, id)
  redis.call('HINCRBY', P .. 'queues', q, 1)
  enqueue_at(id, q, prio, run_at)
  recount(q, nil, 'pending', id)
  return id, created, replaced
end
"""

ENQUEUE = r"""
-- ARGV[3]: 1 to return the jobs (else ids); ARGV[4..]: the jobs (see insert()).
local out = {}
for i = 4, #ARGV, 11 do
  local id, created, replaced = insert(i)
  if ARGV[3] == '1' then
    table.insert(out, {created, replaced, redis.call('HGETALL', jk(id))})
  else
    table.insert(out, id)
  end
end
return out
"""

CLAIM = r"""
-- ARGV[3]: lease seconds, [4]: owner, [5]: limit, [6]: limited at most or '',
-- [7]: number of queues Q, [8]: number of limited tasks L; then the Q queues, then L
-- times (name, concurrency or '', rate or '', per, rate key, per key '1'/'0'), then
-- one lease token per job that may be claimed.
local lease, owner, limit = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local total = tonumber(ARGV[6]) or math.huge
local nq, nl = tonumber(ARGV[7]), tonumber(ARGV[8])
local limits = {}
local at = 9 + nq
for _ = 1, nl do
  limits[ARGV[at]] = {conc = tonumber(ARGV[at + 1]), rate = tonumber(ARGV[at + 2]),
    per = tonumber(ARGV[at + 3]), rkey = ARGV[at + 4], per_key = ARGV[at + 5] == '1'}
  at = at + 6
end
local tokens = at
local CHUNK, BUDGET = math.min(limit, 100), 5000
-- One cursor per unpaused queue over its ready set, in claim order; nothing is
-- removed from the sets until the walk is over, so the offsets hold.
local cursors = {}
for i = 9, 8 + nq do
  local q = ARGV[i]
  if redis.call('SISMEMBER', P .. 'paused', q) == 0 then
    promote(q)
    table.insert(cursors, {q = q, buf = {}, pos = 1, start = 0})
  end
end
local function head(c)
  while not c.cur do
    if c.pos > #c.buf then
      if c.done then return nil end
      c.buf = redis.call('ZRANGE', P .. 'ready:' .. c.q, c.start, c.start + CHUNK - 1)
      c.start, c.pos = c.start + #c.buf, 1
      if #c.buf == 0 then c.done = true; return nil end
    end
    local m = c.buf[c.pos]
    local id = string.sub(m, 25)
    local h = redis.call('HMGET', jk(id), 'priority', 'run_at', 'expires_at', 'name', 'limit_key')
    if h[3] and tonumber(h[3]) <= NOW then
      c.pos = c.pos + 1  -- expired: the expiry sweep ends it
    else
      c.cur = {-tonumber(h[1]), tonumber(h[2]), tonumber(id), m, id, h[4], h[5]}
    end
  end
  return c.cur
end
local function before(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end
local trimmed = {}
local function starts_key(lim, group)
  local k = P .. 'starts:' .. lim.rkey
  if lim.per_key then k = k .. '\0' .. group end
  if not trimmed[k] then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', num(NOW - lim.per))
    trimmed[k] = true
  end
  return k
end
-- Whether the limits let this claim take the job; if so, count it as taken.
local function fits(name, limit_key)
  local lim = limits[name]
  if not lim then return true end
  if total <= 0 then return false end
  local group = limit_key and ('+' .. limit_key) or '-'
  local field = lim.per_key and (name .. '\0' .. group) or name
  if lim.conc and tonumber(redis.call('HGET', P .. 'running', field) or '0') >= lim.conc then
    return false
  end
  if lim.rate then
    local k = starts_key(lim, group)
    if redis.call('ZCOUNT', k, '(' .. num(NOW - lim.per), '+inf') >= lim.rate then
      return false
    end
    redis.call('ZADD', k, NOW_S, redis.call('INCR', P .. 'startseq'))
  end
  total = total - 1
  return true
end
local out = {}
local expires = num(NOW + lease)
local examined = 0
while #out < limit and examined < BUDGET do
  local best, from = nil, nil
  for _, c in ipairs(cursors) do
    local h = head(c)
    if h and (not best or before(h, best)) then best, from = h, c end
  end
  if not best then break end
  from.cur, from.pos, examined = nil, from.pos + 1, examined + 1
  if fits(best[6], best[7]) then
    local id = best[5]
    redis.call('HINCRBY', jk(id), 'attempts', 1)
    redis.call('HSET', jk(id), 'status', 'processing', 'lease_owner', owner,
      'lease_token', ARGV[tokens + #out], 'lease_expires_at', expires, 'started_at', NOW_S,
      'updated_at', NOW_S)
    redis.call('ZADD', P .. 'processing', expires, id)
    running(best[6], best[7], 1)
    recount(from.q, 'pending', 'processing', id)
    table.insert(out, {from.q, best[4], id})
  end
end
local jobs = {}
for _, taken in ipairs(out) do
  redis.call('ZREM', P .. 'ready:' .. taken[1], taken[2])
  redis.call('ZREM', P .. 'pending:' .. taken[1], taken[3])
  table.insert(jobs, redis.call('HGETALL', jk(taken[3])))
end
return jobs
"""

HAS_RUNNABLE = r"""
-- ARGV[3..]: the queues. A read: due jobs still in the delayed sets count too.
for i = 3, #ARGV do
  local q = ARGV[i]
  if redis.call('SISMEMBER', P .. 'paused', q) == 0 then
    if redis.call('ZCARD', P .. 'ready:' .. q) > 0 then return 1 end
    if redis.call('ZCOUNT', P .. 'delayed:' .. q, '-inf', NOW_S) > 0 then return 1 end
  end
end
return 0
"""

RENEW = r"""
-- ARGV[3]: lease seconds, then (id, token) pairs. Returns {id, cancel_requested} renewed.
local expires = num(NOW + tonumber(ARGV[3]))
local out = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local h = held(id, ARGV[i + 1])
  if h then
    redis.call('HSET', jk(id), 'lease_expires_at', expires, 'updated_at', NOW_S)
    redis.call('ZADD', P .. 'processing', expires, id)
    table.insert(out, {id, h.cancel_requested or '0'})
  end
end
return out
"""

PROGRESS = r"""
-- ARGV[3]: id, ARGV[4]: token, ARGV[5]: progress.
if not held(ARGV[3], ARGV[4]) then return 0 end
redis.call('HSET', jk(ARGV[3]), 'progress', ARGV[5], 'updated_at', NOW_S)
return 1
"""

COMPLETE = r"""
-- ARGV[3..]: (id, token, has result '0'/'1', result) per job. One 0/1 per job.
local out = {}
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  local h = held(id, ARGV[i + 1])
  if h then
    if ARGV[i + 2] == '1' then
      redis.call('HSET', jk(id), 'result', ARGV[i + 3])
    else
      redis.call('HDEL', jk(id), 'result')
    end
    finish(id, h, 'completed')
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end
end
return out
"""

FAIL = r"""
-- ARGV[3]: id, [4]: token, [5]: retry_at or '', [6] type, [7] message, [8] traceback
-- or '' (with [9] '1' when given). Returns the new status, or nil.
local id = ARGV[3]
local h = held(id, ARGV[4])
if not h then return false end
redis.call('HSET', jk(id), 'error_type', ARGV[6], 'error_message', ARGV[7])
if ARGV[9] == '1' then
  redis.call('HSET', jk(id), 'error_traceback', ARGV[8])
else
  redis.call('HDEL', jk(id), 'error_traceback')
end
if h.cancel_requested == '1' then
  finish(id, h, 'cancelled')
  return 'cancelled'
end
if ARGV[5] ~= '' and tonumber(h.attempts) < tonumber(h.max_attempts) then
  requeue(id, h, ARGV[5])
  return 'pending'
end
finish(id, h, 'failed')
return 'failed'
"""

RELEASE = r"""
-- ARGV[3]: id, [4]: token, [5]: run_at or ''. Returns the new status, or nil.
local id = ARGV[3]
local h = held(id, ARGV[4])
if not h then return false end
local attempts = math.max(tonumber(h.attempts) - 1, 0)
redis.call('HSET', jk(id), 'attempts', tostring(attempts))
if h.cancel_requested == '1' then
  finish(id, h, 'cancelled')
  return 'cancelled'
end
local run_at = ARGV[5]
if run_at == '' then run_at = NOW_S end
requeue(id, h, run_at)
return 'pending'
"""

FINISH_CANCELLED = r"""
-- ARGV[3]: id, [4]: token.
local h = held(ARGV[3], ARGV[4])
if not h then return 0 end
finish(ARGV[3], h, 'cancelled')
return 1
"""

RESCUE = r"""
-- ARGV[3]: limit. Returns {id, new status} per job whose lease expired.
local ids = redis.call('ZRANGEBYSCORE', P .. 'processing', '-inf', NOW_S, 'LIMIT', 0,
  tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local h = load(id)
  if not h or h.status ~= 'processing' then
    redis.call('ZREM', P .. 'processing', id)
  else
    local message = 'lease expired (worker died?) during attempt ' .. h.attempts .. ' of ' ..
      h.max_attempts .. '; last held by ' .. (h.lease_owner or '?')
    redis.call('HSET', jk(id), 'error_type', 'LeaseExpired', 'error_message', message)
    redis.call('HDEL', jk(id), 'error_traceback')
    local status
    if h.cancel_requested == '1' then
      status = 'cancelled'
      finish(id, h, status)
    elseif tonumber(h.attempts) < tonumber(h.max_attempts) then
      status = 'pending'
      requeue(id, h, h.run_at)
    else
      status = 'failed'
      finish(id, h, status)
    end
    table.insert(out, {id, status})
  end
end
return out
"""

CANCEL = r"""
-- ARGV[3]: id. Returns the job afterwards, or nil if unknown.
local id = ARGV[3]
local h = load(id)
if not h then return false end
if h.status == 'pending' then
  finish(id, h, 'cancelled')
elseif h.status == 'processing' then
  redis.call('HSET', jk(id), 'cancel_requested', '1', 'updated_at', NOW_S)
end
return redis.call('HGETALL', jk(id))
"""

RETRY = r"""
-- ARGV[3]: id, [4]: run_at or ''. Returns {'ok', job}, {'conflict', key, holder}, or nil.
local id = ARGV[3]
local h = load(id)
if not h or (h.status ~= 'failed' and h.status ~= 'cancelled') then return false end
if h.unique_key then
  local k = P .. 'uniq:' .. h.name .. '\0' .. h.unique_key
  local holder = redis.call('GET', k)
  if holder and holder ~= id then return {'conflict', h.unique_key, holder} end
  redis.call('SET', k, id)
end
local run_at = ARGV[4]
if run_at == '' then run_at = NOW_S end
redis.call('ZREM', P .. 'finished:' .. h.status, id)
redis.call('ZREM', P .. 'expiring', id)
redis.call('HSET', jk(id), 'status', 'pending', 'attempts', '0', 'run_at', run_at,
  'updated_at', NOW_S)
redis.call('HDEL', jk(id), 'expires_at', 'cancel_requested', 'result', 'progress',
  'started_at', 'finished_at', 'lease_owner', 'lease_token', 'lease_expires_at')
enqueue_at(id, h.queue, h.priority, run_at)
recount(h.queue, h.status, 'pending', id)
return {'ok', redis.call('HGETALL', jk(id))}
"""

PURGE = r"""
-- ARGV[3]: status, [4]: older than, [5]: batch size. Returns how many were deleted.
local status = ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished:' .. status, '-inf',
  '(' .. ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(ids) do
  local q, name, key = unpack(redis.call('HMGET', jk(id), 'queue', 'name', 'unique_key'))
  if key then
    local last = P .. 'last:' .. name .. '\0' .. key
    if redis.call('GET', last) == id then redis.call('DEL', last) end
  end
  redis.call('ZREM', P .. 'finished:' .. status, id)
  redis.call('ZREM', P .. 'all', id)
  if q then
    recount(q, status, nil, id)
    if redis.call('HINCRBY', P .. 'queues', q, -1) <= 0 then
      redis.call('HDEL', P .. 'queues', q)
      redis.call('DEL', P .. 'counts:' .. q)
    end
  end
  redis.call('DEL', jk(id))
end
return #ids
"""

PAUSE = r"""
-- ARGV[3]: queue, [4]: most paused queues. Returns 0 when too many are paused.
if redis.call('SISMEMBER', P .. 'paused', ARGV[3]) == 1 then return 1 end
if redis.call('SCARD', P .. 'paused') >= tonumber(ARGV[4]) then return 0 end
redis.call('SADD', P .. 'paused', ARGV[3])
return 1
"""

STATS = r"""
-- Returns {now, paused, completed last minute, failed last minute, per queue:
-- {queue, counts (flat), scheduled, oldest due run_at or ''}}.
local queues = redis.call('HKEYS', P .. 'queues')
local per = {}
for _, q in ipairs(queues) do
  local oldest = redis.call('ZRANGEBYSCORE', P .. 'pending:' .. q, '-inf', NOW_S,
    'WITHSCORES', 'LIMIT', 0, 1)
  table.insert(per, {q, redis.call('HGETALL', P .. 'counts:' .. q),
    redis.call('ZCOUNT', P .. 'pending:' .. q, '(' .. NOW_S, '+inf'), oldest[2] or ''})
end
local minute = '(' .. num(NOW - 60)
return {NOW_S, redis.call('SMEMBERS', P .. 'paused'),
  redis.call('ZCOUNT', P .. 'finished:completed', minute, NOW_S),
  redis.call('ZCOUNT', P .. 'finished:failed', minute, NOW_S), per}
"""

OLDEST_DUE = r"""
-- The oldest due run_at of the unpaused queues (or ''), and the time.
local oldest = nil
for _, q in ipairs(redis.call('HKEYS', P .. 'queues')) do
  if redis.call('SISMEMBER', P .. 'paused', q) == 0 then
    local first = redis.call('ZRANGEBYSCORE', P .. 'pending:' .. q, '-inf', NOW_S,
      'WITHSCORES', 'LIMIT', 0, 1)
    if first[2] and (not oldest or tonumber(first[2]) < oldest) then
      oldest = tonumber(first[2])
    end
  end
end
return {oldest and num(oldest) or '', NOW_S}
"""

EXPIRE = r"""
-- ARGV[3]: limit. Ends pending jobs past their expires_at as cancelled; their ids.
local limit, out, start = tonumber(ARGV[3]), {}, 0
while #out < limit do
  local ids = redis.call('ZRANGEBYSCORE', P .. 'expiring', '-inf', NOW_S, 'LIMIT', start, 100)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local h = load(id)
    if not h then
      redis.call('ZREM', P .. 'expiring', id)
    elseif h.status ~= 'pending' then
      start = start + 1  -- running: it may still come back for a retry and expire then
    elseif #out < limit then
      local attempt = ' before it started'
      if h.attempts ~= '0' then
        attempt = ' before attempt ' .. (tonumber(h.attempts) + 1) .. ' started'
      end
      redis.call('HSET', jk(id), 'error_type', 'Expired',
        'error_message', 'expired at ' .. utc(tonumber(h.expires_at)) .. attempt)
      redis.call('HDEL', jk(id), 'error_traceback')
      finish(id, h, 'cancelled')
      table.insert(out, id)
    end
  end
end
return out
"""

UPSERT_SCHEDULE = r"""
-- ARGV[3]: name, [4]: spec, [5]: next fire time. Stores it if new or its spec
-- changed. Returns the schedule's hash.
local k = P .. 'schedule:' .. ARGV[3]
local spec = redis.call('HGET', k, 'spec')
if spec ~= ARGV[4] then
  redis.call('HSET', k, 'name', ARGV[3], 'spec', ARGV[4], 'next_fire_at', ARGV[5],
    'updated_at', NOW_S)
  if not spec then redis.call('HSET', k, 'paused', '0') end
  redis.call('SADD', P .. 'schedules', ARGV[3])
end
return redis.call('HGETALL', k)
"""

FIRE_SCHEDULE = r"""
-- ARGV[3]: name, [4]: fire time, [5]: next fire time, then the jobs (see insert()).
-- Returns {ids...} when it fired, nil when it was not due at that time any more.
local k = P .. 'schedule:' .. ARGV[3]
local h = redis.call('HMGET', k, 'next_fire_at', 'paused')
local fire_at = tonumber(ARGV[4])
if not h[1] or tonumber(h[1]) ~= fire_at or h[2] == '1' or fire_at > NOW then return false end
redis.call('HSET', k, 'next_fire_at', ARGV[5], 'updated_at', NOW_S)
local ids = {}
for i = 6, #ARGV, 11 do
  local id = insert(i)
  table.insert(ids, id)
end
if #ids > 0 then redis.call('HSET', k, 'last_fire_at', ARGV[4], 'last_job_id', ids[#ids]) end
return {'fired', ids}
"""

PAUSE_SCHEDULE = r"""
-- ARGV[3]: name, [4]: '1' to pause, '0' to resume, [5]: next fire time or ''.
local k = P .. 'schedule:' .. ARGV[3]
if redis.call('EXISTS', k) == 0 then return false end
redis.call('HSET', k, 'paused', ARGV[4], 'updated_at', NOW_S)
if ARGV[5] ~= '' then redis.call('HSET', k, 'next_fire_at', ARGV[5]) end
return redis.call('HGETALL', k)
"""

SCRIPTS = {
    "upsert_schedule": UPSERT_SCHEDULE,
    "fire_schedule": FIRE_SCHEDULE,
    "pause_schedule": PAUSE_SCHEDULE,
    "expire": EXPIRE,
    "enqueue": ENQUEUE,
    "claim": CLAIM,
    "has_runnable": HAS_RUNNABLE,
    "renew": RENEW,
    "progress": PROGRESS,
    "complete": COMPLETE,
    "fail": FAIL,
    "release": RELEASE,
    "finish_cancelled": FINISH_CANCELLED,
    "rescue": RESCUE,
    "cancel": CANCEL,
    "retry": RETRY,
    "purge": PURGE,
    "pause": PAUSE,
    "stats": STATS,
    "oldest_due": OLDEST_DUE,
}
"""Every script by name; each runs with :data:`HELPERS` in front of it."""
