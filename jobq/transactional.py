"""Enqueue in the app's own database transaction: the job commits with the app's
rows, or vanishes with their rollback.

:meth:`jobq.DurableQueue.in_transaction` opens a :class:`Transaction` for the
block of code inside it; every enqueue of that queue in that block (in that
thread or asyncio task: the block is kept in a context variable) writes through
the app's connection rather than the queue's own (see
:mod:`jobq.storage.external` for what is checked and how the rows go in).

What the app may give:

- a SQLAlchemy ``Session``, a ``scoped_session`` (Flask-SQLAlchemy's
  ``db.session``) or a ``Connection``: the jobs go through the connection of
  its current transaction, begun if it was not yet (as SQLAlchemy would at the
  first statement), taken afresh at each enqueue (a commit in the block starts a
  new transaction, maybe on another pooled connection);
- a driver's connection: ``sqlite3``, ``apsw`` or psycopg 3.

An ``Engine`` is refused: it has no transaction.

After the commit, worker pools are woken and ``job_enqueued`` is sent for each
new job (and, for an ``inline`` queue, the jobs run): for a ``Session``, by its
``after_commit`` event, at once; for a ``Connection`` or a driver's connection,
whose commit jobq does not see, call :meth:`Transaction.committed` after it, or
let pools find the jobs by polling (their ``poll_interval``, 10 ms by default;
on PostgreSQL the server delivers the ``NOTIFY`` at commit anyway, so pools on
every host wake without it). After a rollback nothing is sent.

Rule: imports the storage contract and basic values; SQLAlchemy only when the
app passes one of its objects (it is an optional extra, ``jobq[sqlalchemy]``),
and never the queue module: the queue is seen through :class:`Owner`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from . import signals
from .errors import ConfigurationError
from .job import Job
from .storage.base import NewJob, Storage

__all__ = ["Owner", "Transaction", "current", "opened", "refuse_inside"]

SESSION_KEY = "jobq.transactions"
"""Key of ``Session.info`` holding the transactions waiting for the session's commit."""


class Owner(Protocol):
    """What a :class:`Transaction` needs of its queue."""

    storage: Storage
    inline: bool

    def _wake(self, queue_name: str) -> None: ...

    def run_until_empty(self) -> int: ...


_active: ContextVar[tuple[Transaction, ...]] = ContextVar("jobq_transactions", default=())


def current(owner: object) -> Transaction | None:
    """The innermost open :class:`Transaction` of ``owner`` in this context, if any."""
    for transaction in reversed(_active.get()):
        if transaction.owner is owner:
            return transaction
    return None


def refuse_inside(owner: object, what: str) -> None:
    """Raise :class:`~jobq.ConfigurationError` if ``owner`` has a transaction open
    here: ``what`` (batches, chains) is written by jobq's own transactions, which
    would not commit or roll back with the app's, so it is refused, nothing stored."""
    if current(owner) is not None:
        raise ConfigurationError(
            f"{what} cannot be written in the app's transaction (in_transaction): "
            "jobq would store it in a transaction of its own, which would not roll back "
            "with the app's; enqueue it after the app has committed"
        )


class Transaction:
    """Enqueues of one queue written through the app's connection; what
    ``with queue.in_transaction(...) as tx`` gives.

    Jobs enqueued in it are returned as written (with their ids), visible to
    workers once the app commits. Use :meth:`committed` after committing a
    ``Connection`` or a driver's connection yourself (a ``Session`` calls it).
    """

    def __init__(self, owner: Owner, target: Any) -> None:
        self.owner = owner
        self.target = target
        """What the app gave (a scoped_session is resolved to its current Session)."""
        self._kind = _kind_of(target)
        # What was written and not yet committed: (the Session's savepoint at the
        # time, or None; the job's queue; the job if it is new).
        self._written: list[tuple[Any, str, Job | None]] = []
        self._lock = threading.Lock()

    # -- writing --------------------------------------------------------------------------

    def store(self, job: NewJob, now: float) -> Job:
        """Write one job through the app's connection; return it as written."""
        enqueued = self.owner.storage.enqueue_on(self._connection(), job, now=now)
        stored = enqueued.job
        if enqueued.created or enqueued.replaced:
            self._pending(stored.queue, stored if enqueued.created else None)
        return stored

    def store_many(
        self,
        template: NewJob,
        payloads: Sequence[str],
        limit_keys: Sequence[str | None] | None,
        now: float,
    ) -> list[int]:
        """Write one job like ``template`` per payload (with ``limit_keys[i]``, when
        given), in multi-row inserts where they have no unique key; their ids."""
        storage = self.owner.storage
        if limit_keys is None:  # one statement for all, as the queue's own bulk path
            ids = storage.enqueue_payloads_on(self._connection(), template, payloads, now=now)
        else:
            pairs = zip(payloads, limit_keys, strict=True)
            jobs = [template._replace(payload=p, limit_key=k) for p, k in pairs]
            ids = storage.enqueue_many_on(self._connection(), jobs, now=now)
        if ids:
            self._pending(template.queue, None)
        return ids

    # -- after the commit -------------------------------------------------------------------

    def committed(self) -> None:
        """Tell workers that the jobs written so far are committed: wake this
        process's pools and other processes' (SQLite's wake-up channel), send
        ``job_enqueued`` for each new job, and run them in an ``inline`` queue.
        Call it after committing a ``Connection`` or a driver's connection (a
        ``Session`` calls it from its ``after_commit`` event). Calling it again,
        or for nothing, does nothing."""
        with self._lock:
            written, self._written = self._written, []
        queues = {queue for _, queue, _ in written}
        created = [job for _, _, job in written if job is not None]
        if not queues:
            return
        self.owner.storage.notify_committed(queues)
        for queue in sorted(queues):
            self.owner._wake(queue)
        if created and signals.job_enqueued.receivers:
            for job in created:
                signals.emit(signals.job_enqueued, self.owner, job=job)
        if self.owner.inline:
            self.owner.run_until_empty()

    def rolled_back(self) -> None:
        """Forget the jobs written so far: the transaction holding them rolled back."""
        with self._lock:
            self._written.clear()

    def savepoint_rolled_back(self, savepoint: Any) -> None:
        """Forget the jobs written inside ``savepoint`` (a Session's nested
        transaction) or a savepoint within it: it rolled back."""
        with self._lock:
            self._written = [entry for entry in self._written if not _within(entry[0], savepoint)]

    def _pending(self, queue: str, created: Job | None) -> None:
        savepoint = None
        if self._kind == "session":
            savepoint = self.target.get_nested_transaction()
            waiting: list[Transaction] = self.target.info.setdefault(SESSION_KEY, [])
            if self not in waiting:
                waiting.append(self)
        with self._lock:
            self._written.append((savepoint, queue, created))

    def _connection(self) -> Any:
        """The driver's connection of the app's current transaction."""
        if self._kind == "session":
            return self.target.connection().connection.driver_connection
        if self._kind == "connection":
            if not self.target.in_transaction():
                self.target.begin()  # what SQLAlchemy's autobegin does at a first statement
            return self.target.connection.driver_connection
        return self.target


@contextmanager
def opened(owner: Owner, target: Any) -> Iterator[Transaction]:
    """Open a :class:`Transaction` of ``owner`` on ``target`` for a ``with`` block."""
    transaction = Transaction(owner, _resolved(target))
    token = _active.set((*_active.get(), transaction))
    try:
        yield transaction
    finally:
        _active.reset(token)


# -- SQLAlchemy, imported only if the app did ---------------------------------------------


def _resolved(target: Any) -> Any:
    """``target`` checked; a scoped_session as its current Session."""
    if target is None:
        raise ConfigurationError("in_transaction() needs the app's Session or connection, got None")
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is None:
        return target  # SQLAlchemy was never imported: a driver's connection, or wrong
    if isinstance(target, orm.scoped_session):
        target = target()
    engine = sys.modules["sqlalchemy.engine"]
    if isinstance(target, engine.Engine):
        raise ConfigurationError(
            "in_transaction() needs a Session or a Connection, not an Engine, which has no "
            "transaction: use `with engine.begin() as conn:` and pass conn, or pass a Session"
        )
    asyncio_ext = sys.modules.get("sqlalchemy.ext.asyncio")
    if asyncio_ext is not None and isinstance(
        target, (asyncio_ext.AsyncSession, asyncio_ext.AsyncConnection)
    ):
        raise ConfigurationError(
            "in_transaction() takes a synchronous Session or Connection; asyncio ones are "
            "not supported"
        )
    if isinstance(target, orm.Session):
        _listen_to_sessions(orm)
    return target


def _kind_of(target: Any) -> str:
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is not None:
        if isinstance(target, orm.Session):
            return "session"
        if isinstance(target, sys.modules["sqlalchemy.engine"].Connection):
            return "connection"
    return "driver"


_listening = False
_listening_lock = threading.Lock()


def _listen_to_sessions(orm: Any) -> None:
    """Hook every Session's commit and end of transaction, once per process."""
    global _listening
    if _listening:
        return
    with _listening_lock:
        if _listening:
            return
        from sqlalchemy import event

        event.listen(orm.Session, "after_commit", _after_commit)
        event.listen(orm.Session, "after_transaction_end", _after_transaction_end)
        event.listen(orm.Session, "after_soft_rollback", _after_soft_rollback)
        _listening = True


def _after_commit(session: Any) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the jobs wait for the outer commit
    waiting: list[Transaction] | None = session.info.pop(SESSION_KEY, None)
    for transaction in waiting or ():
        transaction.committed()


def _within(inner: Any, savepoint: Any) -> bool:
    """Whether the SessionTransaction ``inner`` is ``savepoint`` or nested in it."""
    while inner is not None:
        if inner is savepoint:
            return True
        inner = inner.parent
    return False


def _after_soft_rollback(session: Any, previous_transaction: Any) -> None:
    if previous_transaction.nested:  # a savepoint rolled back: its jobs are gone
        for pending in session.info.get(SESSION_KEY, ()):
            pending.savepoint_rolled_back(previous_transaction)


def _after_transaction_end(session: Any, transaction: Any) -> None:
    if transaction.parent is not None:
        return  # a savepoint: the outer transaction decides
    # After a commit, _after_commit emptied the list already: this is a rollback.
    waiting: list[Transaction] | None = session.info.pop(SESSION_KEY, None)
    for pending in waiting or ():
        pending.rolled_back()
