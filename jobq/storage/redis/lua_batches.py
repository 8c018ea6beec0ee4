"""The Lua text of batches on Redis (:mod:`jobq.storage.batches`): :data:`HELPERS`,
appended to the shared helpers (which declare ``batch_counted`` and
``batch_dropped``): the counting that the shared ``finish``, ``drop`` and the
retry script call, so every way a job ends, is deleted or goes back to pending
counts in its batch in the same script run; and the batch scripts (see
:mod:`.lua`).

A batch is the hash ``batch:<id>`` (``total``, ``completed``, ``failed``,
``cancelled``, ``sealed``, ``cancel_requested``, times, its callbacks' task
names, queue, priority, max_attempts, ``meta``, and once finished
``finished_at`` and ``callbacks``, the callback job ids). The count that makes
a sealed batch's jobs all ended inserts its callback jobs and stamps
``finished_at`` in the same run; scripts run one at a time, so that happens
once per batch.

Rule: text only; imports nothing.
"""

from __future__ import annotations

HELPERS = r"""
-- Batches: batch:<b> counts its jobs' ends; batch_jobs:<b> holds its jobs' ids.
local function bk(b) return P .. 'batch:' .. b end
local ENDED = {completed = true, failed = true, cancelled = true}
local function bload(b)
  local flat = redis.call('HGETALL', bk(b))
  local c = {}
  for i = 1, #flat, 2 do c[flat[i]] = flat[i + 1] end
  return c
end
-- A finished batch with none of its jobs or callback jobs left (``gone`` is being
-- deleted) goes into batches:done, by finish time, for purge.
local function batch_left(b, c, gone)
  if not c.finished_at then return end
  if redis.call('ZCARD', P .. 'batch_jobs:' .. b) > 0 then return end
  for cb in string.gmatch(c.callbacks or '', '[^,]+') do
    if cb ~= gone and redis.call('EXISTS', jk(cb)) == 1 then return end
  end
  redis.call('ZADD', P .. 'batches:done', c.finished_at, b)
end
-- Store a callback job of batch b, pending and due now, with the batch's counts
-- as its one argument (a BatchSummary); its id.
local function batch_callback(b, c, name, event)
  local id = tostring(redis.call('INCR', P .. 'seq'))
  local summary = '{"args":[{"id":' .. b .. ',"event":"' .. event .. '","total":' ..
    c.total .. ',"completed":' .. c.completed .. ',"failed":' .. c.failed ..
    ',"cancelled":' .. c.cancelled .. ',"meta":' .. c.meta .. '}],"kwargs":{}}'
  redis.call('HSET', jk(id), 'id', id, 'queue', c.queue, 'name', name, 'payload', summary,
    'priority', c.priority, 'status', 'pending', 'attempts', '0', 'max_attempts',
    c.max_attempts, 'run_at', NOW_S, 'created_at', NOW_S, 'updated_at', NOW_S,
    'callback_of', b)
  redis.call('ZADD', P .. 'all', id, id)
  redis.call('HINCRBY', P .. 'queues', c.queue, 1)
  enqueue_at(id, c.queue, c.priority, NOW_S)
  recount(c.queue, nil, 'pending', id)
  return id
end
-- A sealed, unfinished batch whose jobs have all ended: insert its callbacks
-- (on_complete always, on_success when every job completed, on_failure when one
-- failed) and stamp finished_at.
local function batch_check(b)
  local f = redis.call('HMGET', bk(b), 'sealed', 'finished_at', 'total', 'completed', 'failed',
    'cancelled')
  if f[1] ~= '1' or f[2] then return end
  if tonumber(f[4]) + tonumber(f[5]) + tonumber(f[6]) < tonumber(f[3]) then return end
  local c = bload(b)
  local total, completed = tonumber(c.total), tonumber(c.completed)
  local ids = {}
  if c.on_complete then table.insert(ids, batch_callback(b, c, c.on_complete, 'complete')) end
  if c.on_success and completed == total then
    table.insert(ids, batch_callback(b, c, c.on_success, 'success'))
  end
  if c.on_failure and tonumber(c.failed) > 0 then
    table.insert(ids, batch_callback(b, c, c.on_failure, 'failure'))
  end
  c.finished_at, c.callbacks = NOW_S, table.concat(ids, ',')
  redis.call('HSET', bk(b), 'finished_at', NOW_S, 'callbacks', c.callbacks)
  batch_left(b, c, nil)
end
-- Count a batch job's move from status old to new (h: the job as loaded) into or
-- out of an ended status; the end that completes a sealed batch fires it.
function batch_counted(h, old, new)  -- declared in lua.HELPERS
  local b = h.batch_id
  if not b or old == new or not (ENDED[old] or ENDED[new]) then return end
  if redis.call('EXISTS', bk(b)) == 0 then return end
  if ENDED[old] then redis.call('HINCRBY', bk(b), old, -1) end
  if ENDED[new] then redis.call('HINCRBY', bk(b), new, 1) end
  redis.call('HSET', bk(b), 'updated_at', NOW_S)
  batch_check(b)
end
-- A job about to be deleted: a batch's job that had not ended will never run and
-- counts as cancelled; a batch may be left with no jobs (purge).
function batch_dropped(id)  -- declared in lua.HELPERS
  local f = redis.call('HMGET', jk(id), 'batch_id', 'status', 'callback_of')
  local b = f[1] or f[3]
  if not b or redis.call('EXISTS', bk(b)) == 0 then return end
  if f[1] then
    redis.call('ZREM', P .. 'batch_jobs:' .. b, id)
    if f[2] == 'pending' or f[2] == 'processing' then
      batch_counted({batch_id = b}, f[2], 'cancelled')
    end
  end
  batch_left(b, bload(b), id)
end
"""

_READ = r"""
-- The batches ``ids`` as {hash, jobs processing} each, a missing one left out.
-- Processing jobs are few (workers times prefetch): counted off the leases.
local function batch_read(ids)
  local busy = {}
  for _, b in ipairs(ids) do busy[b] = 0 end
  if #ids > 0 then
    for _, id in ipairs(redis.call('ZRANGE', P .. 'processing', 0, -1)) do
      local f = redis.call('HMGET', jk(id), 'batch_id', 'status')
      if f[1] and busy[f[1]] and f[2] == 'processing' then busy[f[1]] = busy[f[1]] + 1 end
    end
  end
  local out = {}
  for _, b in ipairs(ids) do
    local flat = redis.call('HGETALL', bk(b))
    if #flat > 0 then table.insert(out, {flat, busy[b]}) end
  end
  return out
end
"""

CREATE = r"""
-- ARGV[3..5]: on_complete, on_success, on_failure ('' for none), [6] queue,
-- [7] priority, [8] max_attempts, [9] meta. Returns the new batch's hash.
local b = tostring(redis.call('INCR', P .. 'batch_seq'))
local fields = {'id', b, 'total', '0', 'completed', '0', 'failed', '0', 'cancelled', '0',
  'sealed', '0', 'cancel_requested', '0', 'created_at', NOW_S, 'updated_at', NOW_S,
  'queue', ARGV[6], 'priority', ARGV[7], 'max_attempts', ARGV[8], 'meta', ARGV[9]}
for k, name in ipairs({'on_complete', 'on_success', 'on_failure'}) do
  if ARGV[2 + k] ~= '' then
    table.insert(fields, name); table.insert(fields, ARGV[2 + k])
  end
end
redis.call('HSET', bk(b), unpack(fields))
redis.call('ZADD', P .. 'batches', b, b)
return redis.call('HGETALL', bk(b))
"""

ADD = r"""
-- ARGV[3]: batch id, [4]: arguments per job, then the jobs (see insert()). Returns
-- {'ok', ids}, {'missing'} or {'sealed'} (nothing stored).
local b = ARGV[3]
local sealed = redis.call('HGET', bk(b), 'sealed')
if not sealed then return {'missing'} end
if sealed == '1' then return {'sealed'} end
local ids = {}
for i = 5, #ARGV, tonumber(ARGV[4]) do
  local id = insert(i)
  redis.call('HSET', jk(id), 'batch_id', b)
  redis.call('ZADD', P .. 'batch_jobs:' .. b, id, id)
  table.insert(ids, id)
end
if #ids > 0 then
  redis.call('HINCRBY', bk(b), 'total', #ids)
  redis.call('HSET', bk(b), 'updated_at', NOW_S)
end
return {'ok', ids}
"""

SEAL = (
    _READ
    + r"""
-- ARGV[3]: batch id, [4]: '1' to cancel its jobs too (pending ones end cancelled,
-- processing ones are asked to stop). Seals it; fires it if every job has ended.
-- Returns batch_read({id}).
local b = ARGV[3]
if redis.call('EXISTS', bk(b)) == 0 then return {} end
if ARGV[4] == '1' then
  for _, id in ipairs(redis.call('ZRANGE', P .. 'batch_jobs:' .. b, 0, -1)) do
    local h = load(id)
    if h and h.status == 'pending' then
      finish(id, h, 'cancelled')
    elseif h and h.status == 'processing' then
      redis.call('HSET', jk(id), 'cancel_requested', '1', 'updated_at', NOW_S)
    end
  end
  redis.call('HSET', bk(b), 'cancel_requested', '1')
end
redis.call('HSET', bk(b), 'sealed', '1', 'updated_at', NOW_S)
batch_check(b)
return batch_read({b})
"""
)

READ = (
    _READ
    + r"""
-- ARGV[3]: 'one' with [4] the id, or 'list' with [4] the id to list below ('' for
-- the newest) and [5] how many. Returns batch_read of them, newest first.
if ARGV[3] == 'one' then return batch_read({ARGV[4]}) end
local top = ARGV[4] == '' and '+inf' or '(' .. ARGV[4]
return batch_read(redis.call('ZREVRANGEBYSCORE', P .. 'batches', top, '-inf', 'LIMIT', 0,
  tonumber(ARGV[5])))
"""
)

PURGE = r"""
-- ARGV[3]: finished before, [4]: most to delete. Deletes finished batches with no
-- job left (batches:done); returns how many.
local ids = redis.call('ZRANGEBYSCORE', P .. 'batches:done', '-inf', '(' .. ARGV[3], 'LIMIT',
  0, tonumber(ARGV[4]))
for _, b in ipairs(ids) do
  redis.call('DEL', bk(b), P .. 'batch_jobs:' .. b)
  redis.call('ZREM', P .. 'batches', b)
  redis.call('ZREM', P .. 'batches:done', b)
end
return #ids
"""
