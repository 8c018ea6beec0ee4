"""The Redis backend: :class:`RedisStorage`, the storage contract on a Redis server
(see :mod:`jobq.storage.redis.storage`), for workers on several hosts.

Opened by :func:`jobq.storage.open_storage` for ``redis://`` and ``rediss://``
URLs: ``DurableQueue("redis://host:6379/0")``, ``JOBQ_DATABASE`` and ``--db``
take one, with jobq's options in the query (``?prefix=shop:&durability=refuse``,
see :mod:`.options`). Needs the ``jobq[redis]`` extra (redis-py; hiredis
optional); importing this package without it raises ImportError saying so.

**Data model** (every key starts with the prefix, default ``jobq:``):

- ``job:<id>``: a hash per job, one field per :class:`~jobq.job.Job` field (a
  missing field is None); ``seq``: the id counter (``INCR``).
- ``ready:<queue>``: the due pending jobs, a sorted set with every score 0 whose
  members sort by bytes as priority (highest first), then ``run_at``, then id
  (each an order-preserving 8-byte encoding of a double, then the id as text),
  so ``ZRANGE 0 n`` is claim order.
- ``delayed:<queue>``: pending jobs not yet due, by ``run_at``; a claim moves
  the due ones to ``ready`` first. ``pending:<queue>``: every pending job by
  ``run_at`` (scheduled counts and the oldest runnable age, one seek each).
- ``processing``: held jobs by lease expiry, for rescue; ``owned:<owner>``: the
  jobs leased to each worker pool; ``running``: processing jobs per task and per
  (task, limit key), for concurrency limits; ``starts:<rate key>[\\0<key>]``:
  claim times in the current rate window.
- ``status:<status>`` and ``all``: ids by id, for listing and filters with
  cursors; ``finished:<status>``: final jobs by ``finished_at`` (purge, and the
  jobs finished in the last minute); ``expiring``: jobs by ``expires_at``.
- ``counts:<queue>``: a hash of jobs per status, kept by every change (stats
  never scan); ``queues``: jobs per queue, so a queue is listed while it holds one.
- ``uniq:<task>\\0<key>``: the id of the live job holding a unique key;
  ``last:<task>\\0<key>``: the newest job created with it (throttle).
- ``paused``: the set of paused queues; ``schedule:<name>`` and ``schedules``;
  ``worker:<owner>`` and ``workers``; ``log:<id>``: a job's log lines;
  ``attempt:<id>:<n>``: its attempts that did not complete; ``tp`` and
  ``tp:<queue>``: jobs ended per minute.
- Dependencies (:mod:`.lua_dependencies`): ``waiting:<queue>``: the pending jobs
  waiting for their dependencies (in no ready, delayed or pending set until
  released); ``deps:<id>`` and ``dependents:<id>``: a job's edges, ids by id;
  ``waiters:<id>``: the dependents still counting on a live job. Job hash fields
  ``waiting_for``, ``result_from``, ``parent_result``, ``on_dependency_failure``.
- ``batch:<id>``: a hash per batch (counts, sealed, callbacks, ``finished_at``,
  the callback job ids); ``batch_seq``: its id counter; ``batches``: batch ids,
  for listing; ``batch_jobs:<id>``: its jobs' ids (cancel, purge);
  ``batches:done``: finished batches with no job left, by ``finished_at``
  (purge). A batch's job has a ``batch_id`` field, a callback job ``callback_of``.
- ``wake``: not a key but the pub/sub channel on which the scripts that make jobs
  runnable publish the queue's name, once per queue per run (:mod:`.listener`).

**Scripts** (:mod:`.lua`, :mod:`.lua_jobs`, :mod:`.lua_admin`,
:mod:`.lua_batches`, :mod:`.lua_dependencies`, :mod:`.lua_wake`): every change of
state is one Lua script, registered once (``SCRIPT LOAD``, one round trip when the
storage opens) and run by ``EVALSHA``, so it is atomic: enqueue (one job or a whole
``enqueue_many`` in one run: all or none; unique keys with ``keep``, ``replace`` and
``throttle``), claim (a batch in one round trip, merging the queues' ready sets
in claim order, with task limits checked and counted in the same run), renew,
progress, complete (one or many), fail, release, finish as cancelled, rescue,
expire, cancel, retry, purge, delete, pause, schedules (fired once per fire
time, its jobs enqueued in the same run), job logs, the worker registry and the
stats reads; enqueue with dependencies (a dependency's end settles its
dependents, down a whole chain, in the run of the script that ends it); batches,
counted by the shared ``finish`` and ``drop`` helpers and the retry script, so the
run that ends a sealed batch's last job inserts its callback jobs. Those that put
jobs in a ready set, and resume, publish the queue's name on ``wake``. Times come
from the server's ``TIME`` (``clock="database"``) or
from ``now`` (``clock="caller"``); numbers are passed as text so doubles
round-trip exactly. Lease tokens are random (``secrets``) and fence every later
change.
On the hot paths, bulk travels as JSON (``cjson`` in the scripts): a claim
answers each job as one JSON object, ``enqueue_many`` sends its jobs' fields as
one JSON array and gets the ids back as one, and a new job's enqueue answers
its id and time only.
``enqueue_many`` runs its own script (:mod:`.lua_bulk`): one ``HSET`` per job
and a few multi-member ``ZADD`` and one ``HINCRBY`` per shared key.

**Covered**: the whole storage contract (enqueue with unique keys, claims with
task limits, leases, rescue, expiry, cancel, retry, stats, purge, pause,
schedules, the worker registry, job logs, history, filters and bulk actions,
batches, dependencies and chains); the check, when a storage opens, of the
server's persistence and eviction policy (:mod:`.durability`); wake-ups from any
host through pub/sub (:mod:`.listener`). ``jobq move-jobs``
(:mod:`jobq.storage.transfer`) moves waiting jobs to or from it like any other
storage.

**Limits**: no Redis Cluster (the scripts reach keys they do not
declare, which only a single server allows; a hash tag in the prefix would be
the way). Listing by queue or task name and bulk filters walk an index of ids
(a status's, or every job's) and read each job they pass over, as the SQL
backends scan rows for rare values. A claim looks at most 5,000 runnable jobs
past those its task limits hold back.

**Refused by design**: jobs written in the app's transaction (``in_transaction``):
a Redis queue cannot join an SQL transaction, so each call raises
:class:`~jobq.errors.ConfigurationError` naming SQLite and PostgreSQL (:mod:`.external`).
"""

from .storage import RedisStorage as RedisStorage

__all__ = ["RedisStorage"]
