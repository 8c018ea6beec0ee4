"""The Redis backend (groundwork): :class:`RedisStorage`, the core of the storage
contract on a Redis server (see :mod:`jobq.storage.redis.storage`).

Not wired yet: :func:`jobq.storage.open_storage`, ``DurableQueue("redis://...")``
and ``--db`` do not open it. Needs the ``jobq[redis]`` extra (redis-py; hiredis
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
- ``processing``: held jobs by lease expiry, for rescue.
- ``status:<status>`` and ``all``: ids by id, for listing with cursors;
  ``finished:<status>``: final jobs by ``finished_at`` (purge, and the jobs
  finished in the last minute).
- ``counts:<queue>``: a hash of jobs per status, kept by every change (stats
  never scan); ``queues``: jobs per queue, so a queue is listed while it holds one.
- ``uniq:<task>\\0<key>``: the id of the live job holding a unique key.
- ``paused``: the set of paused queues.

**Scripts** (:mod:`.lua`): every change of state is one Lua script, registered
once and run by ``EVALSHA``, so it is atomic: enqueue (one or many jobs, unique
keys with ``keep`` and ``replace``), claim (a batch in one round trip), renew,
progress, complete (one or many), fail, release, finish as cancelled, rescue,
cancel, retry, purge, pause, and the stats reads. Times come from the server's
``TIME`` (``clock="database"``) or from ``now`` (``clock="caller"``); numbers
are passed as text so doubles round-trip exactly. Lease tokens are random
(``secrets``) and fence every later change.

**Done**: enqueue, enqueue_many (one script: all or none), enqueue_payloads,
claim without task limits, has_runnable, renew, set_progress, complete,
complete_many, fail, release, finish_cancelled, rescue_expired, request_cancel,
retry, get, list_jobs, stats, oldest_runnable_age, purge, pause, resume,
paused_queues.

**Not yet** (each raises :class:`NotImplementedError` naming the operation):
claims with task limits, ``throttle``, expire_jobs (claims already skip expired
jobs), schedules, worker registry, job logs, history, filters and bulk actions,
batches, dependencies, jobs written in the app's transaction, wake-ups
(pub/sub), the persistence and ``maxmemory-policy`` checks, and Redis Cluster
(the scripts reach keys they do not declare, which only a single server allows).
Listing by queue or task name filters an index of ids (status or all), so it
reads every job of that index it passes over.
"""

from .storage import RedisStorage as RedisStorage

__all__ = ["RedisStorage"]
