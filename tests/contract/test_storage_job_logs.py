"""The storage contract, job log lines: append, bound, read, and go with the job.

Every test runs once per backend (see conftest.py). Times are plain numbers
passed as ``now`` and ``logged_at``: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import threading

import pytest

from jobq.defaults import JOB_LOG_LINE_CHARS, JOB_LOG_LINES
from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from jobq.storage.job_logs import JobLogLine, NewLogLine
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)


def _job(storage: Storage) -> int:
    return storage.enqueue(NewJob("t", "[]"), now=T0).job.id


def test_lines_are_kept_in_order_with_their_attempt_and_time(storage: Storage) -> None:
    job_id, other = _job(storage), _job(storage)
    assert storage.job_logs(job_id) == []
    first = [NewLogLine(1, T0 + 1, "connecting"), NewLogLine(1, T0 + 2, "sent to é ✉")]
    assert storage.append_job_log(job_id, first) == 2
    assert storage.append_job_log(job_id, [NewLogLine(2, T0 + 3, "")]) == 1
    assert storage.job_logs(job_id) == [
        JobLogLine(1, 1, T0 + 1, "connecting"),
        JobLogLine(2, 1, T0 + 2, "sent to é ✉"),
        JobLogLine(3, 2, T0 + 3, ""),
    ]
    assert storage.job_logs(other) == []  # each job its own lines


def test_the_oldest_lines_are_dropped_beyond_keep_and_numbers_go_on(storage: Storage) -> None:
    job_id = _job(storage)
    for i in range(1, 8):
        assert storage.append_job_log(job_id, [NewLogLine(1, T0 + i, f"line {i}")], keep=3) == 1
    kept = storage.job_logs(job_id)
    assert [(line.number, line.message) for line in kept] == [
        (5, "line 5"),
        (6, "line 6"),
        (7, "line 7"),
    ]
    # More lines in one call than `keep`: only the newest are stored, numbered as if all were.
    batch = [NewLogLine(2, T0 + 10 + i, f"batch {i}") for i in range(5)]
    assert storage.append_job_log(job_id, batch, keep=3) == 3
    assert [(line.number, line.message) for line in storage.job_logs(job_id)] == [
        (10, "batch 2"),
        (11, "batch 3"),
        (12, "batch 4"),
    ]


def test_the_default_keeps_the_newest_hundred(storage: Storage) -> None:
    job_id = _job(storage)
    lines = [NewLogLine(1, T0, f"{i}") for i in range(JOB_LOG_LINES + 20)]
    storage.append_job_log(job_id, lines[:50])
    storage.append_job_log(job_id, lines[50:])
    kept = storage.job_logs(job_id)
    assert len(kept) == JOB_LOG_LINES
    assert (kept[0].number, kept[0].message) == (21, "20")
    assert kept[-1].number == JOB_LOG_LINES + 20


def test_lines_survive_retries_and_go_with_the_purged_job(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]", max_attempts=2), now=T0).job.id
    kept_id = storage.enqueue(NewJob("t", "[]", queue="other"), now=T0).job.id
    storage.append_job_log(kept_id, [NewLogLine(1, T0, "still here")])
    first = claim_one(storage, now=T0)
    storage.append_job_log(job_id, [NewLogLine(first.attempts, T0 + 1, "try 1")])
    storage.fail(job_id, token(first), BOOM, now=T0 + 2, retry_at=T0 + 3)
    second = claim_one(storage, now=T0 + 3)
    assert second.id == job_id
    storage.append_job_log(job_id, [NewLogLine(second.attempts, T0 + 4, "try 2")])
    storage.fail(job_id, token(second), BOOM, now=T0 + 5, retry_at=None)
    assert [(line.attempt, line.message) for line in storage.job_logs(job_id)] == [
        (1, "try 1"),
        (2, "try 2"),
    ]
    assert storage.purge(older_than=T0 + 100, statuses=[JobStatus.FAILED]) == 1
    assert storage.job_logs(job_id) == []
    # A new job never inherits lines (ids are not reused, and the lines are gone).
    assert storage.append_job_log(job_id, [NewLogLine(1, T0, "late")]) == 0
    assert storage.job_logs(kept_id) == [JobLogLine(1, 1, T0, "still here")]


def test_unknown_jobs_have_no_lines_and_take_none(storage: Storage) -> None:
    line = NewLogLine(1, T0, "x")
    for job_id in (12345, 0, -1, 2**63, True):
        assert storage.append_job_log(job_id, [line]) == 0
        assert storage.job_logs(job_id) == []
    assert storage.append_job_log(_job(storage), []) == 0


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        (NewLogLine(0, T0, "x"), ValueError, "attempt must be an integer from 1"),
        (NewLogLine(1.0, T0, "x"), TypeError, "attempt must be an integer"),  # type: ignore[arg-type]
        (NewLogLine(1, float("nan"), "x"), ValueError, "logged_at"),
        (NewLogLine(1, T0, b"x"), TypeError, "message must be a str"),  # type: ignore[arg-type]
        (NewLogLine(1, T0, "x" * (JOB_LOG_LINE_CHARS + 1)), ValueError, "at most 1000"),
        (NewLogLine(1, T0, "a\x00b"), ValueError, "NUL"),
        ("text", TypeError, "NewLogLine"),
    ],
)
def test_bad_lines_are_refused_before_anything_is_written(
    storage: Storage, line: object, error: type[Exception], words: str
) -> None:
    job_id = _job(storage)
    good = NewLogLine(1, T0, "fine")
    with pytest.raises(error, match=words) as info:
        storage.append_job_log(job_id, [good, line])  # type: ignore[list-item]
    assert "lines[1]" in str(info.value)
    assert storage.job_logs(job_id) == []


@pytest.mark.parametrize("keep", [0, 10_001, 2.5])
def test_keep_out_of_range_is_refused(storage: Storage, keep: object) -> None:
    with pytest.raises(ValueError, match="keep must be an integer from 1 to 10000"):
        storage.append_job_log(_job(storage), [NewLogLine(1, T0, "x")], keep=keep)  # type: ignore[arg-type]


def test_appends_from_several_threads_number_every_line_once(storage: Storage) -> None:
    job_id = _job(storage)
    start = threading.Barrier(4)

    def append(worker: int) -> None:
        start.wait(timeout=10)
        for i in range(10):
            storage.append_job_log(job_id, [NewLogLine(1, T0, f"{worker}:{i}")])

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    lines = storage.job_logs(job_id)
    assert [line.number for line in lines] == list(range(1, 41))
    assert sorted(line.message for line in lines) == sorted(
        f"{w}:{i}" for w in range(4) for i in range(10)
    )
