"""The Lua text of dependencies and chains on Redis (see :mod:`jobq.storage.dependencies`
for what they mean, :mod:`.lua` for how scripts are built).

:data:`HELPERS` goes after every shared helper; it defines the two hooks that
:mod:`.lua` declares and calls: ``deps_finished`` at the end of ``finish`` (every
path that ends a job goes through it: complete, fail, cancel, expiry, rescue, a dead
pool's release, bulk cancel) and ``deps_dropped`` at the start of ``drop`` (delete
and purge). So a dependency's end settles its dependents in the same script run.

A waiting job is pending (counted so), in no queue set (``ready``, ``delayed``,
``pending``) but in ``waiting:<queue>``; its hash keeps the ``run_at`` it asked
for and ``waiting_for``, how many of its dependencies are still live. The edges:
``deps:<id>`` and ``dependents:<id>`` (sorted sets of ids, for the listings), and
``waiters:<id>``: the dependents still counting on a live job, deleted when it
ends, so an edge counts once (even for a dependency retried after it failed).

The cascade down a chain is a loop: ``finish`` of a dependent ended by its policy
calls ``deps_finished`` again, which only appends to the work list that the
outermost call is walking, so a chain of any length costs no Lua stack.

Rule: text only; imports nothing.
"""

from __future__ import annotations

HELPERS = r"""
local dep_work, dep_busy = {}, false
-- One dependency less for the waiting dependent d (hd: its hash); at none left it
-- becomes runnable, at the time it asked for or now, whichever is later.
local function count_down(d, hd, from, result)
  local fields = {'updated_at', NOW_S}
  if from and hd.result_from == from and result then
    table.insert(fields, 'parent_result'); table.insert(fields, result)
  end
  local left = tonumber(hd.waiting_for) - 1
  if left > 0 then
    table.insert(fields, 'waiting_for'); table.insert(fields, tostring(left))
    redis.call('HSET', jk(d), unpack(fields))
    return
  end
  local run_at = hd.run_at
  if tonumber(run_at) < NOW then run_at = NOW_S end
  table.insert(fields, 'run_at'); table.insert(fields, run_at)
  redis.call('HSET', jk(d), unpack(fields))
  redis.call('HDEL', jk(d), 'waiting_for')
  redis.call('SREM', P .. 'waiting:' .. hd.queue, d)
  enqueue_at(d, hd.queue, hd.priority, run_at)
end
-- Apply the end of job x (completed, failed, cancelled or deleted) to the
-- dependents still waiting for it.
local function settle(x, status)
  local k = P .. 'waiters:' .. x
  local waiters = redis.call('SMEMBERS', k)
  redis.call('DEL', k)
  local result = nil
  if status == 'completed' then result = redis.call('HGET', jk(x), 'result') end
  for _, d in ipairs(waiters) do
    local hd = load(d)
    if hd and hd.status == 'pending' and hd.waiting_for then
      if status == 'completed' then
        count_down(d, hd, x, result)
      elseif hd.on_dependency_failure == 'run' then
        count_down(d, hd, nil, nil)
      else
        local said = status == 'deleted' and 'was deleted' or status
        redis.call('HSET', jk(d), 'error_type', 'DependencyFailed',
          'error_message', 'job ' .. x .. ' ' .. said)
        redis.call('HDEL', jk(d), 'error_traceback')
        finish(d, hd, hd.on_dependency_failure == 'fail' and 'failed' or 'cancelled')
      end
    end
  end
end
-- Job x ended (status) or was deleted while live: settle its dependents, and theirs
-- in turn, in a loop (a nested call only adds to the outermost call's list).
local function dependents_ended(x, status)
  if redis.call('EXISTS', P .. 'waiters:' .. x) == 0 then return end
  table.insert(dep_work, {x, status})
  if dep_busy then return end
  dep_busy = true
  local i = 1
  while dep_work[i] do
    settle(dep_work[i][1], dep_work[i][2])
    i = i + 1
  end
  dep_work, dep_busy = {}, false
end
deps_finished = function(id, h, status)
  if h.waiting_for then  -- a waiting job ended before its dependencies did
    redis.call('SREM', P .. 'waiting:' .. h.queue, id)
    redis.call('HDEL', jk(id), 'waiting_for')
  end
  dependents_ended(id, status)
end
deps_dropped = function(id)
  local h = redis.call('HMGET', jk(id), 'status', 'queue', 'waiting_for')
  local k = P .. 'deps:' .. id
  for _, d in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    redis.call('ZREM', P .. 'dependents:' .. d, id)
    redis.call('SREM', P .. 'waiters:' .. d, id)
  end
  redis.call('DEL', k)
  if h[3] then redis.call('SREM', P .. 'waiting:' .. h[2], id) end
  if h[1] == 'pending' or h[1] == 'processing' then dependents_ended(id, 'deleted') end
end
"""

ENQUEUE_DEPENDENT = r"""
-- ARGV[3]: '1' for a chain; ARGV[4..]: per job its 11 fields (see insert()), then
-- on_dependency_failure, takes_result '1'/'0', n, and n ids of depends_on.
-- Returns {'ok', ids...}, or {'unknown', ids...} having stored nothing.
local chain = ARGV[3] == '1'
local jobs = {}
local i = 4
while i <= #ARGV do
  local n = tonumber(ARGV[i + 13])
  local deps = {}
  for k = 1, n do deps[k] = ARGV[i + 13 + k] end
  table.insert(jobs, {at = i, policy = ARGV[i + 11], takes = ARGV[i + 12] == '1', deps = deps})
  i = i + 14 + n
end
-- Every id must exist before anything is written (a script does not roll back);
-- the jobs of this call take the next ids in order, so a later one may name them.
local seq = tonumber(redis.call('GET', P .. 'seq') or '0')
for j, job in ipairs(jobs) do
  local missing = {}
  for _, d in ipairs(job.deps) do
    local n = tonumber(d)
    if not (n > seq and n < seq + j) and redis.call('EXISTS', jk(d)) == 0 then
      table.insert(missing, n)
    end
  end
  if #missing > 0 then
    table.sort(missing)
    local out = {'unknown'}
    for k, n in ipairs(missing) do
      if k == 1 or n ~= missing[k - 1] then table.insert(out, string.format('%d', n)) end
    end
    return out
  end
end
local ids = {'ok'}
local previous = nil
for _, job in ipairs(jobs) do
  local id = insert(job.at)
  local wanted, seen = {}, {}
  for _, d in ipairs(job.deps) do
    if not seen[d] then seen[d] = true; table.insert(wanted, d) end
  end
  if previous and not seen[previous] then table.insert(wanted, previous) end
  local open, failed, failed_as = 0, nil, nil
  local found = {}
  for _, d in ipairs(wanted) do
    local s = redis.call('HMGET', jk(d), 'status', 'result')
    found[d] = s
    if s[1] == 'pending' or s[1] == 'processing' then
      open = open + 1
      redis.call('SADD', P .. 'waiters:' .. d, id)
    elseif (s[1] == 'failed' or s[1] == 'cancelled') and not failed then
      failed, failed_as = d, s[1]
    end
    redis.call('ZADD', P .. 'deps:' .. id, d, d)
    redis.call('ZADD', P .. 'dependents:' .. d, id, id)
  end
  local fields = {'on_dependency_failure', job.policy}
  local from = (previous and job.takes) and previous or nil
  if from then table.insert(fields, 'result_from'); table.insert(fields, from) end
  local q, prio, run_at = ARGV[job.at], ARGV[job.at + 3], redis.call('HGET', jk(id), 'run_at')
  if failed and job.policy ~= 'run' then
    table.insert(fields, 'error_type'); table.insert(fields, 'DependencyFailed')
    table.insert(fields, 'error_message')
    table.insert(fields, 'job ' .. failed .. ' ' .. failed_as)
    redis.call('HSET', jk(id), unpack(fields))
    finish(id, load(id), job.policy == 'fail' and 'failed' or 'cancelled')
  elseif open > 0 then
    table.insert(fields, 'waiting_for'); table.insert(fields, tostring(open))
    redis.call('HSET', jk(id), unpack(fields))
    unqueue(id, q, prio, run_at)
    redis.call('SADD', P .. 'waiting:' .. q, id)
  else
    if from and found[from][1] == 'completed' and found[from][2] then
      table.insert(fields, 'parent_result'); table.insert(fields, found[from][2])
    end
    redis.call('HSET', jk(id), unpack(fields))
  end
  table.insert(ids, id)
  if chain then previous = id end
end
return ids
"""
