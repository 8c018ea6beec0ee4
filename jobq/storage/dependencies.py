"""Jobs that wait for other jobs: the storage side of ``depends_on=`` and chains.

A job enqueued with :attr:`NewJob.depends_on <jobq.storage.base.NewJob.depends_on>`
is stored *waiting*: pending, but with its ``run_at`` at :data:`WAITING_RUN_AT`,
past every claim's ``now``, so the claim index passes it over like a job
scheduled for later, and no claim query changes. Each job keeps how many of
its dependencies have not completed (``waiting_for``); the edges are rows of a
dependency table. The database itself resolves them in the transaction that
ends a dependency, whatever path ends it (complete, fail, cancel, expiry,
lease rescue, bulk actions):

- **completed**: a trigger counts it down in each dependent; the dependent
  whose count reaches 0 becomes runnable at once (``run_at`` becomes the time it
  asked for, or the completion time if later), and a chain step gets the
  result of the job before it.
- **failed or cancelled** (or deleted before it ended): each waiting dependent
  applies its ``on_dependency_failure``: ``"cancel"`` (default) ends it
  cancelled with the error ``DependencyFailed: job 12 failed``, ``"fail"``
  ends it failed with that error, ``"run"`` counts the dependency as done. A
  dependent ended this way ends its own dependents in turn, down the whole
  chain, in the same transaction (a loop in the backend, not trigger
  recursion, so chains of any length cascade).

At enqueue, a dependency already completed counts as met, one already failed
or cancelled applies the policy at once, and an unknown id raises
:class:`~jobq.errors.UnknownDependency`, storing nothing.

A manual retry of a failed dependency does not revive dependents it had
cancelled: they stay cancelled (retry them too). A retried job that was
waiting runs at once; its dependencies are not waited for again.

:class:`DependencyStorage` is this piece of the storage contract.

Rule: imports the errors and the storage records only; the storage contract
(:mod:`jobq.storage.base`) imports this module, not the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from ..errors import UnknownDependency
from .records import NewJob

WAITING_RUN_AT = 1e300
"""The ``run_at`` stored for a waiting job: later than any ``now``, so claims,
due checks and the oldest-runnable age pass it over. Jobs read from storage show
the time they asked for instead."""

POLICIES = ("cancel", "fail", "run")
"""The values of ``on_dependency_failure``."""

MAX_DEPENDENCIES = 1000
"""Most jobs one job may depend on."""


class DependencyStorage(Protocol):
    """The storage contract's piece for dependencies (part of
    :class:`~jobq.storage.base.Storage`)."""

    def enqueue_chain(self, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        """Store ``jobs`` in one transaction, all or none, each after the first
        waiting for the one before it (besides its own ``depends_on``); return
        their ids in order. A job with ``takes_result`` receives the result of the
        job before it as its first positional argument (:attr:`Job.result_from
        <jobq.job.Job.result_from>`, :attr:`Job.parent_result
        <jobq.job.Job.parent_result>`).

        Raises :class:`~jobq.errors.UnknownDependency` for an unknown id in a
        ``depends_on``, ValueError for a job with a ``unique_key`` (in a chain, or
        in an ``enqueue_many`` where some job has ``depends_on``), TypeError or
        ValueError for a bad job: nothing is stored then.
        :meth:`~jobq.storage.base.Storage.enqueue` and
        :meth:`~jobq.storage.base.Storage.enqueue_many` of jobs with
        ``depends_on`` store them the same way (without the chain's links).
        """
        ...

    def dependencies_of(self, job_id: int) -> list[int]:
        """Ids of the jobs ``job_id`` depends on, ascending; empty for none or an
        unknown job."""
        ...

    def dependents_of(self, job_id: int) -> list[int]:
        """Ids of the jobs that depend on ``job_id``, ascending."""
        ...


class DependencyStore(Protocol):
    """What a backend provides for dependencies: SQL only, on checked values."""

    def enqueue(self, jobs: Sequence[NewJob], now: float, chain: bool) -> list[int]:
        """Store ``jobs`` with their dependencies (linked one after another when
        ``chain``) in one transaction; their ids."""
        ...

    def dependencies_of(self, job_id: int) -> list[int]:
        """The jobs ``job_id`` depends on, ascending."""
        ...

    def dependents_of(self, job_id: int) -> list[int]:
        """The jobs that depend on ``job_id``, ascending."""
        ...


def check_dependencies(job: NewJob, where: str) -> None:
    """Reject bad dependency fields of ``job`` (``where`` ends each message)."""
    depends_on = job.depends_on
    if not isinstance(depends_on, tuple):
        raise TypeError(f"depends_on must be a tuple of job ids, got {depends_on!r}{where}")
    if len(depends_on) > MAX_DEPENDENCIES:
        raise ValueError(
            f"depends_on may name at most {MAX_DEPENDENCIES} jobs, got {len(depends_on)}{where}"
        )
    for job_id in depends_on:
        if type(job_id) is not int or not 1 <= job_id <= 2**63 - 1:
            raise ValueError(f"depends_on must hold positive job ids, got {job_id!r}{where}")
    if job.on_dependency_failure not in POLICIES:
        raise ValueError(
            "on_dependency_failure must be 'cancel', 'fail' or 'run', got "
            f"{job.on_dependency_failure!r}{where}"
        )
    if type(job.takes_result) is not bool:
        raise TypeError(f"takes_result must be a bool, got {job.takes_result!r}{where}")


def check_no_unique_key(job: NewJob, where: str) -> None:
    """A job that waits for others cannot take a unique key (what would a
    duplicate enqueue wait for?), nor can a job stored in the same call as one."""
    if job.unique_key is not None:
        raise ValueError(
            f"a job with depends_on, in a chain, or enqueued in one call with jobs that "
            f"have depends_on cannot have a unique_key{where}; enqueue it apart"
        )


_LIVE = frozenset({"pending", "processing"})
_ENDED = frozenset({"failed", "cancelled"})


class Placement(NamedTuple):
    """How a backend stores one job with dependencies (see :func:`place`)."""

    wanted: list[int]
    status: str
    run_at: float
    waiting_for: int
    waiting_run_at: float | None
    result_from: int | None
    parent_result: str | None
    error: str | None
    finished_at: float | None
    resolved: list[bool]


def place(
    job: NewJob, previous: int | None, found: dict[int, tuple[str, str | None]], now: float
) -> Placement:
    """Where ``job`` starts, given its dependencies' ``found`` (id -> (status,
    result), read in the enqueue's transaction) and the chain step before it
    (``previous``): waiting, runnable, or ended at once by its policy. Raises
    :class:`~jobq.errors.UnknownDependency` for an id not in ``found``."""
    wanted = dependency_list(job, previous)
    missing = sorted(set(wanted) - found.keys())
    if missing:
        raise UnknownDependency(missing)
    result_from = previous if previous is not None and job.takes_result else None
    parent_result = None
    if result_from is not None and found[result_from][0] == "completed":
        parent_result = found[result_from][1]
    failed = [d for d in wanted if found[d][0] in _ENDED]
    open_ = [d for d in wanted if found[d][0] in _LIVE]
    run_at = now if job.run_at is None else job.run_at
    # An edge to a dependency that has ended already counted (or ended the job).
    resolved = [found[d][0] not in _LIVE for d in wanted]
    policy = job.on_dependency_failure
    if failed and policy != "run":
        status = "failed" if policy == "fail" else "cancelled"
        error = f"job {failed[0]} {found[failed[0]][0]}"
        return Placement(
            wanted, status, run_at, 0, None, result_from, parent_result, error, now, resolved
        )
    if open_:
        return Placement(
            wanted, "pending", WAITING_RUN_AT, len(open_), run_at, result_from, None, None,
            None, resolved,
        )  # fmt: skip
    return Placement(
        wanted, "pending", run_at, 0, None, result_from, parent_result, None, None, resolved
    )


def dependency_list(job: NewJob, previous: int | None) -> list[int]:
    """The ids ``job`` waits for: its ``depends_on`` and the chain step before it."""
    wanted = list(dict.fromkeys(job.depends_on))
    if previous is not None and previous not in wanted:
        wanted.append(previous)
    return wanted
