"""The Lua text of the Redis backend's wake-up scripts (see :mod:`.lua`): the
scripts that make jobs runnable without putting a job in a ready set themselves.

The jobs a script puts in a ready set wake the pools through ``enqueue_at``
(:mod:`.lua`), which publishes the queue's name on the channel ``<prefix>wake``
once per queue per run: a bulk enqueue of 10,000 jobs is one message.

Rule: text only.
"""

from __future__ import annotations

RESUME = r"""
-- ARGV[3]: queue. Its waiting jobs become claimable again: wake the pools.
if redis.call('SREM', P .. 'paused', ARGV[3]) == 1 then wake(ARGV[3]) end
return 1
"""
