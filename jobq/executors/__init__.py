"""The in-memory tier: :class:`BoundedExecutor`, its per-task :class:`TaskOptions`
and the process-wide named executors of :func:`executor`.

``core`` holds the scheduling (heap, slots, worker threads), ``bounded`` the
public executor class, ``registry`` the named executors. Import these names
from :mod:`jobq`; the package is plural so that it does not shadow the
function ``jobq.executor``.

Rule: the in-memory tier sits with the limiters; it imports only basic values
(``clock``, ``errors``, ``validate``, ``signals``) and ``ratelimit``, never
storage, the durable queue, the worker or anything above them.
"""

from .bounded import BoundedExecutor as BoundedExecutor
from .bounded import TaskOptions as TaskOptions
from .registry import executor as executor

__all__ = ["BoundedExecutor", "TaskOptions", "executor"]
