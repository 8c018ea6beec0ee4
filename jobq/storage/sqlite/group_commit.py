"""Group commit: the threads of one process that write at the same moment share
one transaction, and so one commit (one fsync of the WAL at ``synchronous=FULL``).

A caller that finds no write in progress becomes the leader: it takes every
request queued so far (its own first), runs them in one transaction, commits,
hands each caller its own outcome, then passes the lead to the oldest request
that arrived meanwhile (or marks the group idle). A caller that finds a write
in progress queues its request and sleeps until the leader has committed it,
or until it is its turn to lead. Nobody waits for company: a lone caller leads
at once, and the batch is whatever queued while the previous commit ran.

Every caller returns only after the commit that holds its request, or raises
the error of its own request (the others of its group are unaffected) or of
the transaction (then nothing of the group was stored).

Rule: imports the storage contract's errors only; knows no SQL.
"""

from __future__ import annotations

import copy
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from ..base import StorageError

T = TypeVar("T")
R = TypeVar("R")

_GROUPS: weakref.WeakSet[GroupCommit[object, object]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for group in list(_GROUPS):
        group.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Request(Generic[T, R]):
    __slots__ = ("item", "lead", "outcome", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.outcome: R | BaseException | None = None
        self.lead = False
        # Held while the caller sleeps; released by the leader (a lock is cheaper
        # to make than an Event and a lone caller never makes one).
        self.wake: threading.Lock | None = None

    def result(self) -> R:
        outcome = self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]


class GroupCommit(Generic[T, R]):
    """Runs ``run_batch`` on the requests of concurrent :meth:`submit` calls.

    ``run_batch(items)`` runs and commits one transaction for ``items`` and
    returns one outcome per item, in order: its result, or the exception that
    refused that item alone. If it raises, every item of the batch gets that
    error.
    """

    def __init__(self, run_batch: Callable[[Sequence[T]], list[R | BaseException]]) -> None:
        self._run_batch = run_batch
        self._mutex = threading.Lock()
        self._queued: list[_Request[T, R]] = []
        self._busy = False
        self.commits = 0
        """Batches committed or failed so far (for tests and benchmarks)."""
        self.largest = 1
        """The most requests one batch held so far."""
        _GROUPS.add(self)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget every request and the lead (in a child right after ``fork()``:
        the threads that held them do not exist there)."""
        self._mutex = threading.Lock()
        self._queued = []
        self._busy = False

    @property
    def queued(self) -> int:
        """Requests waiting for the next batch."""
        return len(self._queued)

    def submit(self, item: T) -> R:
        """Run ``item`` in the next batch; return its result once committed."""
        request: _Request[T, R] | None = None
        with self._mutex:
            if self._busy:
                request = _Request(item)
                wake = request.wake = threading.Lock()
                wake.acquire()
                self._queued.append(request)
            else:
                self._busy = True
        if request is None:  # nobody writing: lead alone, at once
            try:
                outcome = self._run_batch((item,))[0]
                self.commits += 1
            finally:
                self._hand_over()
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        wake.acquire()  # released once committed, or when it is our turn to lead
        if request.lead:
            self._lead()
        return request.result()

    def _hand_over(self) -> None:
        """Wake the oldest queued request to lead the next batch, or go idle."""
        with self._mutex:
            if self._queued:
                following = self._queued[0]
                following.lead = True
                assert following.wake is not None
                following.wake.release()
            else:
                self._busy = False

    def _lead(self) -> None:
        # Our own request is the oldest queued: the first of the batch.
        with self._mutex:
            batch, self._queued = self._queued, []
        try:
            outcomes: Sequence[R | BaseException]
            try:
                outcomes = self._run_batch([request.item for request in batch])
            except BaseException as exc:
                outcomes = [exc] + [_for_another_thread(exc) for _ in batch[1:]]
            self.largest = max(self.largest, len(batch))
            self.commits += 1
            for request, outcome in zip(batch, outcomes, strict=True):
                request.outcome = outcome
        finally:
            self._hand_over()
            for request in batch[1:]:
                assert request.wake is not None
                if request.outcome is None:  # the leader itself failed before results
                    request.outcome = StorageError(
                        "the transaction holding this job was interrupted; it was not stored"
                    )
                request.wake.release()


def _for_another_thread(exc: BaseException) -> BaseException:
    """An error of the whole batch as raised in another caller's thread: its own
    copy (one exception object raised in several threads would share a traceback),
    and never a KeyboardInterrupt or SystemExit meant for the leader's thread."""
    error: BaseException
    if not isinstance(exc, Exception):
        error = StorageError(
            f"the transaction holding this job was interrupted ({type(exc).__name__}); "
            "it was not stored"
        )
    else:
        try:
            error = copy.copy(exc)
        except Exception:  # an exception type that cannot be copied
            error = StorageError(str(exc))
    error.__cause__ = exc
    error.__traceback__ = None
    return error
