"""The chains half of :class:`~jobq.DurableQueue`'s interface: enqueue steps that
run one after another, each given the result of the one before (see
:mod:`jobq.chains` and :mod:`jobq.storage.dependencies`).

:class:`QueueChains` is a base class of ``DurableQueue`` and works through the
few queue members it declares. Rule: it imports basic values, the chains and the
storage contract, never the queue module itself.
"""

from __future__ import annotations

import builtins

from . import expiry, signals, transactional
from .chains import Chain, Signature
from .clock import EpochClock
from .storage.base import NewJob, Storage


class QueueChains:
    """Chains of jobs (see the module docstring)."""

    storage: Storage
    clock: EpochClock
    inline: bool

    def _check_size(self, task_name: str, payload: str) -> str:
        """The payload, if it is within the queue's size limit (else PayloadError)."""
        raise NotImplementedError

    def _wake(self, queue_name: str) -> None:
        """Tell this process's pools that jobs of ``queue_name`` may be runnable."""

    def run_until_empty(self) -> int:
        """Run every runnable job here (inline mode)."""
        raise NotImplementedError

    def chain(self, *steps: Signature) -> Chain:
        """Enqueue ``steps`` (made by ``task.s(...)`` or ``task.si(...)``) at once, in
        one transaction, each after the first waiting for the one before it; return
        their job ids (:class:`~jobq.chains.Chain`).

        A step made by ``.s()`` receives the result of the step before it as its
        first positional argument (results are JSON, so a tuple arrives as a list);
        one made by ``.si()`` only its own arguments. The first step runs with its
        own arguments. A step that fails for good or is cancelled ends the steps
        after it as their ``on_dependency_failure`` says (default ``"cancel"``:
        they end cancelled, with the error ``DependencyFailed: job 12 failed``).
        Each step keeps its task's options (queue, retries, timeout) and those
        given with ``step.options(...)``; a step's ``delay`` counts from the
        enqueue, so it runs after that time and after the step before it.

        Raises ValueError for no steps, TypeError/ValueError for arguments that
        do not fit a step's task (naming it), :class:`~jobq.PayloadError` for
        arguments over ``max_payload_bytes``: nothing is stored then.
        """
        transactional.refuse_inside(self, "a chain")
        if not steps:
            raise ValueError("a chain needs at least one step, e.g. queue.chain(a.s(1), b.s())")
        now = self.clock.now()
        jobs: builtins.list[NewJob] = []
        for index, step in enumerate(steps):
            if not isinstance(step, Signature):
                raise TypeError(
                    f"chain() takes steps made by task.s(...) or task.si(...), got {step!r} "
                    f"(step {index + 1})"
                )
            job = step.new_job(after_step=index > 0)
            self._check_size(job.name, job.payload)
            options = step.job_options
            expires_in = options.expiry_after(step.task.settings.expires_in)
            delay = options.start_delay
            if expires_in is not None or job.expires_at is not None:
                job = expiry.timed(job, now, delay, expires_in)
            elif delay is not None:
                job = job._replace(run_at=now + delay)
            jobs.append(job)
        chain = Chain(tuple(self.storage.enqueue_chain(jobs, now=now)))
        self._wake(jobs[0].queue)
        if signals.job_enqueued.receivers:
            for job_id in chain.job_ids:
                stored = self.storage.get(job_id)
                if stored is not None:
                    signals.emit(signals.job_enqueued, self, job=stored)
        if self.inline:
            self.run_until_empty()
        return chain

    def dependencies_of(self, job_id: int) -> builtins.list[int]:
        """Ids of the jobs ``job_id`` depends on (``depends_on``, or the step before it
        in a chain), ascending; empty for none or an unknown job."""
        return self.storage.dependencies_of(job_id)

    def dependents_of(self, job_id: int) -> builtins.list[int]:
        """Ids of the jobs that depend on ``job_id``, ascending."""
        return self.storage.dependents_of(job_id)
