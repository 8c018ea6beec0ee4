"""One-by-one enqueues to a queue this process notified a moment ago leave their
NOTIFY to the end of that moment (jobq.storage.postgres.wakeups): the listeners
still hear of every job, after its commit, and closing the storage sends what
is owed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from jobq.storage.base import NewJob
from tests.helpers import BOUNDED_WAIT, drop_postgres_schema, postgres_schema_url

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")

from jobq.storage.postgres import PostgresStorage  # noqa: E402
from jobq.storage.postgres.wakeups import Wakeups  # noqa: E402


@pytest.fixture
def url() -> Iterator[str]:
    made = postgres_schema_url()
    yield made
    drop_postgres_schema(made)


class Heard:
    """A subscriber that claims whatever is runnable on each notification."""

    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage
        self.notices = 0
        self.claimed: list[int] = []
        self.changed = threading.Condition()
        self.listening = threading.Event()

    def __call__(self, queue: str | None) -> None:
        if queue is None:
            self.listening.set()
            return
        jobs = self.storage.claim(["default"], owner="w", now=0.0, lease_seconds=60, limit=100)
        with self.changed:
            self.notices += 1
            self.claimed.extend(job.id for job in jobs)
            self.changed.notify_all()

    def wait_claimed(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.claimed) >= count, BOUNDED_WAIT)


def _listen(url: str) -> tuple[PostgresStorage, Heard]:
    worker = PostgresStorage(url)
    heard = Heard(worker)
    worker.subscribe(heard)
    assert heard.listening.wait(BOUNDED_WAIT)
    return worker, heard


def test_a_deferred_notify_follows_the_commit_of_its_job(url: str) -> None:
    worker, heard = _listen(url)
    web = PostgresStorage(url)
    web._wakeups = Wakeups(web._db, window=1.0)  # wide, so the second one surely defers
    web._inserts._wakeups = web._wakeups
    try:
        first = web.enqueue(NewJob("t", "[]"), now=0.0).job.id
        assert web._wakeups.may_defer("default")
        second = web.enqueue(NewJob("t", "[]"), now=0.0).job.id
        # The first notify may come before the second job's commit; the owed one
        # comes after it, at the window's end: both jobs are claimed, none by polling.
        assert heard.wait_claimed(2)
        assert sorted(heard.claimed) == [first, second]
    finally:
        web.close()
        worker.close()


def test_closing_sends_the_notifies_still_owed(url: str) -> None:
    worker, heard = _listen(url)
    web = PostgresStorage(url)
    web._wakeups = Wakeups(web._db, window=3600.0)  # only close() can send the owed one
    web._inserts._wakeups = web._wakeups
    try:
        web.enqueue(NewJob("t", "[]"), now=0.0)
        assert heard.wait_claimed(1)
        web.enqueue(NewJob("t", "[]"), now=0.0)
        with heard.changed:
            notices = heard.notices
        web.close()
        with heard.changed:
            assert heard.changed.wait_for(lambda: heard.notices > notices, BOUNDED_WAIT)
        assert heard.wait_claimed(2)
    finally:
        web.close()
        worker.close()


def test_an_inline_notify_pays_only_the_debts_older_than_its_transaction(url: str) -> None:
    storage = PostgresStorage(url)
    wakeups = Wakeups(storage._db, window=3600.0)
    try:
        before = time.monotonic()
        wakeups.owe("default")  # a job committed after `before`: not covered by it
        wakeups.sent("default", began=before)
        assert wakeups._owed.keys() == {"default"}
        wakeups.sent("default", began=time.monotonic())  # began after the owing commit
        assert not wakeups._owed
    finally:
        wakeups.flush()
        storage.close()


def test_a_later_enqueue_after_the_window_announces_the_deferred_job(url: str) -> None:
    worker, heard = _listen(url)
    web = PostgresStorage(url)
    web._wakeups = Wakeups(web._db, window=0.05)
    web._inserts._wakeups = web._wakeups
    try:
        ids = [web.enqueue(NewJob("t", "[]"), now=0.0).job.id for _ in range(2)]
        time.sleep(0.06)  # the window passes: the next enqueue notifies in its transaction
        ids.append(web.enqueue(NewJob("t", "[]"), now=0.0).job.id)
        assert heard.wait_claimed(3)
        assert sorted(heard.claimed) == ids
    finally:
        web.close()
        worker.close()
