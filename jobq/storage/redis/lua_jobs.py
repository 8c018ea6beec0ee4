"""The Lua text of the scripts on the workers' path: enqueue, claim, renew, progress,
complete, fail, release, finish as cancelled, rescue, expire (see :mod:`.lua`).

Rule: text only; imports nothing.
"""

from __future__ import annotations

ENQUEUE = r"""
-- ARGV[3]: 1 to return the jobs, 2 the same but only the id and the time for a job
-- created (the caller has the rest), else ids; ARGV[4..]: the jobs (see insert()).
-- Many jobs at once go through enqueue_many (lua_bulk).
local out = {}
for i = 4, #ARGV, 11 do
  local id, created, replaced = insert(i)
  if ARGV[3] == '0' then
    table.insert(out, id)
  elseif ARGV[3] == '2' and created == '1' then
    table.insert(out, {created, replaced, id, NOW_S})
  else
    table.insert(out, {created, replaced, redis.call('HGETALL', jk(id))})
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
    local h = redis.call('HMGET', jk(id), 'priority', 'run_at', 'expires_at', 'name', 'limit_key',
      'attempts')
    if h[3] and tonumber(h[3]) <= NOW then
      c.pos = c.pos + 1  -- expired: the expiry sweep ends it
    else
      c.cur = {-tonumber(h[1]), tonumber(h[2]), tonumber(id), m, id, h[4], h[5], h[6]}
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
    redis.call('HSET', jk(id), 'attempts', tostring(tonumber(best[8]) + 1),
      'status', 'processing', 'lease_owner', owner, 'lease_token', ARGV[tokens + #out],
      'lease_expires_at', expires, 'started_at', NOW_S, 'updated_at', NOW_S)
    running(best[6], best[7], 1, owner, id)  -- per job: fits() reads these counts
    table.insert(out, {from.q, best[4], id})
  end
end
-- The sets and counts the jobs leave or join (as recount() and the lease would
-- change them job by job), one command per set, in slices that unpack() takes.
local function call_all(command, key, args)
  for i = 1, #args, 2000 do
    redis.call(command, key, unpack(args, i, math.min(#args, i + 1999)))
  end
end
local ids, leased, scored, by_queue = {}, {}, {}, {}
for _, taken in ipairs(out) do
  local q, id = taken[1], taken[3]
  local group = by_queue[q]
  if not group then
    group = {ready = {}, ids = {}}
    by_queue[q] = group
  end
  table.insert(group.ready, taken[2])
  table.insert(group.ids, id)
  table.insert(ids, id)
  table.insert(leased, expires); table.insert(leased, id)
  table.insert(scored, id); table.insert(scored, id)
end
for q, group in pairs(by_queue) do
  call_all('ZREM', P .. 'ready:' .. q, group.ready)
  call_all('ZREM', P .. 'pending:' .. q, group.ids)
  redis.call('HINCRBY', P .. 'counts:' .. q, 'pending', -#group.ids)
  redis.call('HINCRBY', P .. 'counts:' .. q, 'processing', #group.ids)
end
call_all('ZADD', P .. 'processing', leased)
call_all('ZREM', P .. 'status:pending', ids)
call_all('ZADD', P .. 'status:processing', scored)
local jobs = {}
for _, id in ipairs(ids) do
  -- One JSON object per job: the client parses it much faster than a hash's fields.
  table.insert(jobs, cjson.encode(load(id)))
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
    elseif h.result then
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
record(id, h, 'failed')
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
record(ARGV[3], h, 'cancelled')
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
    table.insert(out, {id, release_lost(id, h, 'lease_expired')})
  end
end
return out
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
