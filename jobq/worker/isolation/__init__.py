"""Process isolation of attempts: ``@queue.task(timeout=60, isolation="process")``.

A Python thread cannot be killed, so a task stuck in a C call or a hung socket
keeps its worker thread for good. A task declared with ``isolation="process"``
runs each attempt in a child process of the worker instead, which is killed when
the task's timeout passes or its job is cancelled, and whose crash fails only
the attempt. :mod:`.server` forks the children from a clean point;
:mod:`.children` runs an attempt in one; :mod:`.wire` says what crosses (JSON).

Rule: part of the worker; imports the worker's execute step, never the pool.
"""

from __future__ import annotations

from .children import Children

__all__ = ["Children"]
