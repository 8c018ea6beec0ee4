"""The Lua text of the Redis backend's scripts: the shared helpers that every script
starts with (:data:`HELPERS`), and :data:`SCRIPTS`, every script by name (their text
is in :mod:`.lua_jobs` and :mod:`.lua_admin`). Each runs atomically on the server
(see :mod:`jobq.storage.redis`).

Every script takes ``ARGV[1]``, the key prefix, and ``ARGV[2]``, the time: epoch
seconds as text, or ``""`` to read the server's clock (``TIME``). Numbers go in and
out as text (``%.17g``, which round-trips a double exactly); a missing hash field
is None.

Rule: text only; imports its sibling text modules.
"""

from __future__ import annotations

from . import lua_admin, lua_batches, lua_bulk, lua_dependencies, lua_jobs, lua_wake

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
local batch_counted, batch_dropped  -- batch counting: lua_batches.HELPERS, appended
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
-- Tell the worker pools subscribed on any host that queue q has runnable jobs:
-- its name on the channel P .. 'wake', once per queue per run of a script. pcall:
-- a user the server's ACL does not let publish there still stores jobs (pools poll).
local WOKEN = {}
local function wake(q)
  if not WOKEN[q] then
    WOKEN[q] = true
    redis.pcall('PUBLISH', P .. 'wake', q)
  end
end
-- Put a pending job where claims find it: ready when due (waking the pools), else
-- delayed.
local function enqueue_at(id, q, prio, run_at_s)
  local run_at = tonumber(run_at_s)
  redis.call('ZADD', P .. 'pending:' .. q, run_at_s, id)
  if run_at <= NOW then
    redis.call('ZADD', P .. 'ready:' .. q, 0, order_key(prio, run_at, id))
    wake(q)
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
-- Count a job of task ``name`` (and limit key) into or out of processing, and into
-- or out of the set of the jobs leased to its owner.
local function running(name, limit_key, delta, owner, id)
  if owner then
    if delta > 0 then
      redis.call('SADD', P .. 'owned:' .. owner, id)
    else
      redis.call('SREM', P .. 'owned:' .. owner, id)
    end
  end
  local group = limit_key and ('+' .. limit_key) or '-'
  for _, field in ipairs({name, name .. '\0' .. group}) do
    if redis.call('HINCRBY', P .. 'running', field, delta) <= 0 then
      redis.call('HDEL', P .. 'running', field)  -- no counter left behind per key
    end
  end
end
-- Keep the attempt of a processing job that just ended without completing.
local function record(id, h, outcome)
  local n = redis.call('HINCRBY', jk(id), 'attempt_rows', 1)
  local e = redis.call('HMGET', jk(id), 'error_type', 'error_message', 'error_traceback')
  local fields = {'attempt', h.attempts, 'ended_at', NOW_S, 'outcome', outcome}
  for name, value in pairs({lease_owner = h.lease_owner, started_at = h.started_at}) do
    table.insert(fields, name); table.insert(fields, value)
  end
  if outcome ~= 'cancelled' then
    for k, name in ipairs({'error_type', 'error_message', 'error_traceback'}) do
      if e[k] then table.insert(fields, name); table.insert(fields, e[k]) end
    end
  end
  redis.call('HSET', P .. 'attempt:' .. id .. ':' .. n, unpack(fields))
end
-- Hooks of dependencies, defined by lua_dependencies.HELPERS (after every helper).
local deps_finished, deps_dropped
-- Drop a job's hash, log lines and attempts.
local function drop(id)
  deps_dropped(id)
  batch_dropped(id)
  local n = tonumber(redis.call('HGET', jk(id), 'attempt_rows') or '0')
  for k = 1, n do redis.call('DEL', P .. 'attempt:' .. id .. ':' .. k) end
  redis.call('DEL', jk(id), P .. 'log:' .. id)
end
-- Count a job that ended completed or failed in its minute (for all queues and its
-- own); a minute's first count forgets the counters of more than 2 days before.
local function count_ended(q, status)
  local minute = math.floor(NOW / 60) * 60
  local field = (status == 'completed' and 'c' or 'f') .. minute
  for _, k in ipairs({P .. 'tp', P .. 'tp:' .. q}) do
    if redis.call('HINCRBY', k, field, 1) == 1 then
      for _, old in ipairs(redis.call('HKEYS', k)) do
        if tonumber(string.sub(old, 2)) < minute - 172800 then redis.call('HDEL', k, old) end
      end
    end
  end
end
-- End a job (status: completed, failed or cancelled), from pending or processing.
local function finish(id, h, status)
  local old = h.status
  if old == 'pending' then unqueue(id, h.queue, h.priority, h.run_at) end
  if old == 'processing' then
    redis.call('ZREM', P .. 'processing', id)
    running(h.name, h.limit_key, -1, h.lease_owner, id)
  end
  redis.call('HSET', jk(id), 'status', status, 'finished_at', NOW_S, 'updated_at', NOW_S)
  redis.call('HDEL', jk(id), 'lease_expires_at')
  redis.call('ZADD', P .. 'finished:' .. status, NOW_S, id)
  redis.call('ZREM', P .. 'expiring', id)
  recount(h.queue, old, status, id)
  batch_counted(h, old, status)
  if status ~= 'cancelled' then count_ended(h.queue, status) end
  free_key(id, h.name, h.unique_key)
  deps_finished(id, h, status)
end
-- Back to pending at run_at_s, from processing.
local function requeue(id, h, run_at_s)
  redis.call('ZREM', P .. 'processing', id)
  running(h.name, h.limit_key, -1, h.lease_owner, id)
  redis.call('HSET', jk(id), 'status', 'pending', 'run_at', run_at_s, 'updated_at', NOW_S)
  redis.call('HDEL', jk(id), 'lease_expires_at', 'finished_at')
  enqueue_at(id, h.queue, h.priority, run_at_s)
  recount(h.queue, 'processing', 'pending', id)
end
-- Release a processing job whose holder is gone (its error already set): back to
-- pending while attempts remain, else failed; cancelled if a cancel was asked.
local function release_lost(id, h, outcome)
  record(id, h, outcome)
  if h.cancel_requested == '1' then
    finish(id, h, 'cancelled')
    return 'cancelled'
  elseif tonumber(h.attempts) < tonumber(h.max_attempts) then
    requeue(id, h, h.run_at)
    return 'pending'
  end
  finish(id, h, 'failed')
  return 'failed'
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
HELPERS += lua_batches.HELPERS

HELPERS += lua_dependencies.HELPERS

SCRIPTS = {
    "enqueue": lua_jobs.ENQUEUE,
    "claim": lua_jobs.CLAIM,
    "has_runnable": lua_jobs.HAS_RUNNABLE,
    "renew": lua_jobs.RENEW,
    "progress": lua_jobs.PROGRESS,
    "complete": lua_jobs.COMPLETE,
    "fail": lua_jobs.FAIL,
    "release": lua_jobs.RELEASE,
    "finish_cancelled": lua_jobs.FINISH_CANCELLED,
    "rescue": lua_jobs.RESCUE,
    "expire": lua_jobs.EXPIRE,
    "cancel": lua_admin.CANCEL,
    "retry": lua_admin.RETRY,
    "purge": lua_admin.PURGE,
    "pause": lua_admin.PAUSE,
    "stats": lua_admin.STATS,
    "oldest_due": lua_admin.OLDEST_DUE,
    "upsert_schedule": lua_admin.UPSERT_SCHEDULE,
    "fire_schedule": lua_admin.FIRE_SCHEDULE,
    "pause_schedule": lua_admin.PAUSE_SCHEDULE,
    "delete": lua_admin.DELETE,
    "append_log": lua_admin.APPEND_LOG,
    "register_worker": lua_admin.REGISTER_WORKER,
    "worker_seen": lua_admin.WORKER_SEEN,
    "unregister_worker": lua_admin.UNREGISTER_WORKER,
    "live_workers": lua_admin.LIVE_WORKERS,
    "release_owner": lua_admin.RELEASE_OWNER,
    "resume": lua_wake.RESUME,
    "enqueue_dependent": lua_dependencies.ENQUEUE_DEPENDENT,
    "batch_create": lua_batches.CREATE,
    "batch_add": lua_batches.ADD,
    "batch_seal": lua_batches.SEAL,
    "batch_read": lua_batches.READ,
    "batch_purge": lua_batches.PURGE,
    "enqueue_many": lua_bulk.ENQUEUE_MANY,
}
"""Every script by name; each runs with :data:`HELPERS` in front of it."""
