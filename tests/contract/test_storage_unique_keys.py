"""The storage contract: unique keys are scoped to their task (part of the contract,
run once per backend)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token
from tests.helpers import run_children

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)


def test_another_task_with_the_same_key_gets_a_job_of_its_own(storage: Storage) -> None:
    report = storage.enqueue(NewJob("report", "[1]", unique_key="user:7"), now=T0)
    mail = storage.enqueue(NewJob("mail", "[2]", unique_key="user:7"), now=T0)
    assert report.created
    assert mail.created
    assert mail.job.id != report.job.id
    assert (mail.job.name, mail.job.payload) == ("mail", "[2]")
    again = storage.enqueue(NewJob("report", "[3]", unique_key="user:7"), now=T0 + 1)
    assert not again.created
    assert again.job == report.job


def test_bulk_enqueue_scopes_keys_to_the_task(storage: Storage) -> None:
    held = storage.enqueue(NewJob("report", "[]", unique_key="k"), now=T0).job
    ids = storage.enqueue_many(
        [
            NewJob("mail", "[]", unique_key="k"),
            NewJob("report", "[]", unique_key="k"),
            NewJob("mail", "[]", unique_key="k"),
        ],
        now=T0,
    )
    assert ids[1] == held.id
    assert ids[0] == ids[2] != held.id
    assert storage.get(ids[0]).name == "mail"  # type: ignore[union-attr]


def test_retry_is_refused_only_by_a_live_job_of_the_same_task(storage: Storage) -> None:
    first = storage.enqueue(NewJob("report", "[]", unique_key="k", max_attempts=1), now=T0).job
    claimed = claim_one(storage, T0)
    assert storage.fail(claimed.id, token(claimed), BOOM, now=T0) is JobStatus.FAILED
    storage.enqueue(NewJob("mail", "[]", unique_key="k"), now=T0)  # another task's key
    retried = storage.retry(first.id, now=T0 + 1)
    assert retried is not None
    assert retried.status is JobStatus.PENDING


def test_racing_threads_store_one_job_per_task_and_key(storage: Storage) -> None:
    start = threading.Barrier(8)
    seen: dict[str, set[int]] = {"report": set(), "mail": set()}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def enqueue(task: str) -> None:
        try:
            start.wait(timeout=10)
            for n in range(20):
                if n % 2:
                    ids = storage.enqueue_many([NewJob(task, "[]", unique_key="k")], now=T0)
                else:
                    ids = [storage.enqueue(NewJob(task, "[]", unique_key="k"), now=T0).job.id]
                with lock:
                    seen[task].update(ids)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=enqueue, args=("report" if n % 2 else "mail",)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(seen["report"]) == len(seen["mail"]) == 1, seen
    jobs = storage.list_jobs()
    assert sorted(job.name for job in jobs) == ["mail", "report"]


@pytest.mark.slow  # starts processes: the full suite runs it, not --fast
def test_racing_processes_store_one_job_per_task_and_key(
    spec: dict[str, Any], storage: Storage
) -> None:
    results = run_children(
        [
            [json.dumps(spec), "enqueue-unique", task, "k", "10"]
            for task in ("report", "mail", "report", "mail")
        ]
    )
    report = {i for result in results[0::2] for i in result["ids"]}
    mail = {i for result in results[1::2] for i in result["ids"]}
    assert len(report) == len(mail) == 1
    assert report != mail
    assert len(storage.list_jobs()) == 2
