"""The Lua text of the administration scripts: cancel, retry, purge, pause, the stats
reads and schedules (see :mod:`.lua`).

Rule: text only; imports nothing.
"""

from __future__ import annotations

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
batch_counted(h, h.status, 'pending')
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
  drop(id)
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
-- {queue, counts (flat), scheduled, oldest due run_at or '', waiting}}.
local queues = redis.call('HKEYS', P .. 'queues')
local per = {}
for _, q in ipairs(queues) do
  local oldest = redis.call('ZRANGEBYSCORE', P .. 'pending:' .. q, '-inf', NOW_S,
    'WITHSCORES', 'LIMIT', 0, 1)
  table.insert(per, {q, redis.call('HGETALL', P .. 'counts:' .. q),
    redis.call('ZCOUNT', P .. 'pending:' .. q, '(' .. NOW_S, '+inf'), oldest[2] or '',
    redis.call('SCARD', P .. 'waiting:' .. q)})
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

DELETE = r"""
-- ARGV[3..]: ids. Deletes each job unless it is processing (or gone); how many were.
local deleted = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local h = load(id)
  if h and h.status ~= 'processing' then
    if h.status == 'pending' then unqueue(id, h.queue, h.priority, h.run_at) end
    free_key(id, h.name, h.unique_key)
    if h.unique_key then
      local last = P .. 'last:' .. h.name .. '\0' .. h.unique_key
      if redis.call('GET', last) == id then redis.call('DEL', last) end
    end
    redis.call('ZREM', P .. 'finished:' .. h.status, id)
    redis.call('ZREM', P .. 'expiring', id)
    redis.call('ZREM', P .. 'all', id)
    recount(h.queue, h.status, nil, id)
    if redis.call('HINCRBY', P .. 'queues', h.queue, -1) <= 0 then
      redis.call('HDEL', P .. 'queues', h.queue)
      redis.call('DEL', P .. 'counts:' .. h.queue)
    end
    drop(id)
    deleted = deleted + 1
  end
end
return deleted
"""

APPEND_LOG = r"""
-- ARGV[3]: id, [4]: numbers skipped before the first line, [5]: lines kept, then
-- per line its attempt, time and message. Returns how many were stored (0: no job).
local id = ARGV[3]
if redis.call('EXISTS', jk(id)) == 0 then return 0 end
local log = P .. 'log:' .. id
local n = redis.call('HINCRBY', jk(id), 'log_lines', tonumber(ARGV[4]))
local stored = 0
for i = 6, #ARGV, 3 do
  n = n + 1
  redis.call('RPUSH', log, n .. '\n' .. ARGV[i] .. '\n' .. ARGV[i + 1] .. '\n' .. ARGV[i + 2])
  stored = stored + 1
end
redis.call('HSET', jk(id), 'log_lines', n)
redis.call('LTRIM', log, -tonumber(ARGV[5]), -1)
return stored
"""

REGISTER_WORKER = r"""
-- ARGV[3]: seconds after which unseen pools are forgotten, then the row's fields
-- (owner, host, pid, name, queues, concurrency, lease_seconds, boot_id,
-- pid_namespace, process_start; '' for None).
local owner = ARGV[4]
for _, other in ipairs(redis.call('SMEMBERS', P .. 'workers')) do
  local seen = redis.call('HGET', P .. 'worker:' .. other, 'last_seen_at')
  if other ~= owner and (not seen or tonumber(seen) < NOW - tonumber(ARGV[3])) then
    redis.call('DEL', P .. 'worker:' .. other)
    redis.call('SREM', P .. 'workers', other)
  end
end
local k = P .. 'worker:' .. owner
redis.call('DEL', k)
redis.call('HSET', k, 'owner', owner, 'host', ARGV[5], 'pid', ARGV[6], 'name', ARGV[7],
  'queues', ARGV[8], 'concurrency', ARGV[9], 'lease_seconds', ARGV[10], 'started_at', NOW_S,
  'last_seen_at', NOW_S, 'stopping', '0', 'threads', '[]')
for n, field in ipairs({'boot_id', 'pid_namespace', 'process_start'}) do
  if ARGV[10 + n] ~= '' then redis.call('HSET', k, field, ARGV[10 + n]) end
end
redis.call('SADD', P .. 'workers', owner)
return 1
"""

WORKER_SEEN = r"""
-- ARGV[3]: owner, [4]: concurrency or '', [5]: stopping '1'/'0', [6]: threads or ''
-- (with [7] '1' when given). Returns 0 when the pool has no row.
local k = P .. 'worker:' .. ARGV[3]
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HSET', k, 'last_seen_at', NOW_S, 'stopping', ARGV[5])
if ARGV[4] ~= '' then redis.call('HSET', k, 'concurrency', ARGV[4]) end
if ARGV[7] == '1' then redis.call('HSET', k, 'threads', ARGV[6]) end
return 1
"""

UNREGISTER_WORKER = r"""
-- ARGV[3]: owner. Returns 1 when it had a row.
redis.call('SREM', P .. 'workers', ARGV[3])
return redis.call('DEL', P .. 'worker:' .. ARGV[3])
"""

LIVE_WORKERS = r"""
-- ARGV[3]: most seconds unseen, or '' for each pool's lease. Returns the time and
-- {row, jobs leased} per live pool.
local out = {}
for _, owner in ipairs(redis.call('SMEMBERS', P .. 'workers')) do
  local h = redis.call('HMGET', P .. 'worker:' .. owner, 'last_seen_at', 'lease_seconds')
  if h[1] then
    local age = tonumber(ARGV[3]) or tonumber(h[2])
    if tonumber(h[1]) >= NOW - age then
      table.insert(out, {redis.call('HGETALL', P .. 'worker:' .. owner),
        redis.call('SCARD', P .. 'owned:' .. owner)})
    end
  end
end
return out
"""

RELEASE_OWNER = r"""
-- ARGV[3]: owner, [4]: when it registered. Returns {id, new status} per job released.
local owner = ARGV[3]
local k = P .. 'worker:' .. owner
local started = redis.call('HGET', k, 'started_at')
if not started or tonumber(started) ~= tonumber(ARGV[4]) then return {} end
redis.call('DEL', k)
redis.call('SREM', P .. 'workers', owner)
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'owned:' .. owner)) do
  local h = load(id)
  if h and h.status == 'processing' and h.lease_owner == owner then
    redis.call('HSET', jk(id), 'error_type', 'WorkerDied', 'error_message',
      'worker process ' .. owner .. ' died during attempt ' .. h.attempts .. ' of ' ..
      h.max_attempts)
    redis.call('HDEL', jk(id), 'error_traceback')
    table.insert(out, {id, release_lost(id, h, 'worker_died')})
  else
    redis.call('SREM', P .. 'owned:' .. owner, id)
  end
end
return out
"""
