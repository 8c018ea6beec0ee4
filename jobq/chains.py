"""Chains: steps that run one after another, each given the result of the one before.

::

    chain = queue.chain(fetch.s(url), parse.s(), store.si(batch_id))
    # fetch(url) -> parse(<fetch's result>) -> store(batch_id)

A step is a :class:`Signature`, made by :meth:`Task.s <jobq.Task.s>` (it takes the
result of the step before it as its first positional argument, then its own
arguments) or :meth:`Task.si <jobq.Task.si>` (its own arguments only). Every
step is enqueued at once, in one transaction; each after the first waits for
the one before it (``depends_on``), so it runs only once that one completed.
A step that fails for good (after its retries) or is cancelled ends the rest as
its ``on_dependency_failure`` says (default: cancelled, with the error
``DependencyFailed: job 12 failed``). See :mod:`jobq.storage.dependencies`.

Rule: imports the task options and the storage contract's values only;
:mod:`jobq.tasks` builds on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

from . import codec
from .storage.records import NewJob
from .task_options import JobOptions, TaskSettings


class ChainTask(Protocol):
    """What a step needs of its task (:class:`~jobq.Task` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> TaskSettings: ...

    def encode(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str: ...

    def limit_key_of(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None: ...

    def new_job(
        self, payload: str, options: JobOptions = ..., limit_key: str | None = None
    ) -> NewJob: ...


@dataclass(frozen=True)
class Signature:
    """One step of a chain: a task, its own arguments and enqueue options, and whether
    it receives the result of the step before it (``takes_result``). Make one with
    :meth:`Task.s <jobq.Task.s>` or :meth:`Task.si <jobq.Task.si>`."""

    task: ChainTask
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    takes_result: bool = True
    job_options: JobOptions = field(default_factory=JobOptions)

    def options(self, **options: Any) -> Signature:
        """This step with enqueue options (those of :meth:`Task.options
        <jobq.Task.options>`: ``priority``, ``queue``, ``max_attempts``, ``delay``,
        ``expires_in``, ``on_dependency_failure``, ``depends_on`` for extra
        dependencies ...). ``unique_key`` is refused: a step waits for others."""
        changed = replace(self.job_options, **options)
        if changed.unique_key is not None:
            raise ValueError("a step of a chain cannot have a unique_key")
        return replace(self, job_options=changed)

    def new_job(self, after_step: bool) -> NewJob:
        """The job of this step; ``after_step``: there is a step before it (the first
        step of a chain takes no result). Raises TypeError or ValueError for arguments
        that do not fit the task, as an enqueue would."""
        task, args, kwargs = self.task, self.args, self.kwargs
        takes = self.takes_result and after_step
        if takes:
            # Checked with a stand-in for the result, stored without it.
            stand_in = (None, *args)
            task.encode(stand_in, kwargs)
            payload = codec.encode(
                {"args": list(args), "kwargs": dict(kwargs)}, name=f"{task.name} arguments"
            )
            limit_key = task.limit_key_of(stand_in, kwargs)
        else:
            payload = task.encode(args, kwargs)
            limit_key = task.limit_key_of(args, kwargs)
        job = task.new_job(payload, self.job_options, limit_key)
        return job._replace(takes_result=takes)

    def __repr__(self) -> str:
        call = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        kind = "s" if self.takes_result else "si"
        return f"{self.task.name}.{kind}({', '.join(call)})"


class Chain(NamedTuple):
    """What :meth:`DurableQueue.chain <jobq.DurableQueue.chain>` stored: the ids of
    its steps' jobs, in order. Pass ``chain.last_id`` (or the chain itself) in
    another job's ``depends_on`` to run it after the whole chain."""

    job_ids: tuple[int, ...]

    @property
    def first_id(self) -> int:
        """The id of the first step's job."""
        return self.job_ids[0]

    @property
    def last_id(self) -> int:
        """The id of the last step's job, whose result is the chain's."""
        return self.job_ids[-1]

    @property
    def id(self) -> int:
        """:attr:`last_id`, so a chain can stand in ``depends_on`` for its last job."""
        return self.job_ids[-1]


def result_argument(parent_result: str | None) -> Any:
    """The first argument a chain step receives: the result of the step before it,
    decoded (None when that step returned None or its result is gone)."""
    return None if parent_result is None else json.loads(parent_result)
