"""flask_jobq.signals: each core event re-sent once, with the app as sender."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from blinker import NamedSignal
from flask import Flask

import jobq
from flask_jobq import JobQ, signals, state_for
from tests.helpers import AppFactory, eventually

ALL_SIGNALS = [
    signals.job_enqueued,
    signals.job_started,
    signals.job_succeeded,
    signals.job_failed,
    signals.job_retrying,
    signals.job_cancelled,
    signals.job_lease_expired,
    signals.worker_started,
    signals.worker_stopped,
]

Event = tuple[str, Any, dict[str, Any]]


@contextlib.contextmanager
def recording(*watched: NamedSignal) -> Iterator[list[Event]]:
    events: list[Event] = []
    lock = threading.Lock()
    with contextlib.ExitStack() as stack:
        for signal in watched or ALL_SIGNALS:

            def receiver(sender: Any, _name: str = signal.name, **kwargs: Any) -> None:
                with lock:
                    events.append((_name, sender, kwargs))

            stack.enter_context(signal.connected_to(receiver))
        yield events


def _of(events: list[Event], name: str, sender: Flask | None = None) -> list[dict[str, Any]]:
    return [kw for n, s, kw in events if n == name and (sender is None or s is sender)]


def test_each_event_fires_once_with_the_app_as_sender(make_app: AppFactory, ext: JobQ) -> None:
    @ext.task("ok")
    def ok() -> int:
        return 7

    @ext.task("broken", max_attempts=2, backoff=0)
    def broken() -> None:
        raise ValueError("no luck")

    first, second = make_app("first", TESTING=False), make_app("second", TESTING=False)
    state_for(second).start_workers()  # a second app with workers must not echo events

    @first.post("/go")
    def go() -> dict[str, int]:
        return {"ok": ok.enqueue().id, "broken": broken.enqueue().id}

    with recording() as events:
        with first.test_client() as client:
            ids = client.post("/go").get_json()
        queue = state_for(first).queue
        eventually(lambda: queue.get(ids["ok"]).status is jobq.JobStatus.COMPLETED)
        eventually(lambda: queue.get(ids["broken"]).status is jobq.JobStatus.FAILED)
        pool = state_for(first).pool
        state_for(first).stop_workers(timeout=5.0)

    assert all(sender is first for _, sender, _ in events), events
    assert [kw["pool"] for kw in _of(events, "worker-started")] == [pool]
    assert [kw["pool"] for kw in _of(events, "worker-stopped")] == [pool]
    enqueued = _of(events, "job-enqueued")
    assert sorted(kw["job"].id for kw in enqueued) == sorted(ids.values())
    assert all(isinstance(kw["job"], jobq.Job) for kw in enqueued)
    started = sorted((kw["job"].id, kw["job"].attempts) for kw in _of(events, "job-started"))
    assert started == sorted([(ids["ok"], 1), (ids["broken"], 1), (ids["broken"], 2)])
    [succeeded] = _of(events, "job-succeeded")
    assert succeeded["job"].id == ids["ok"]
    assert succeeded["result"] == 7
    [retrying] = _of(events, "job-retrying")
    assert retrying["job"].id == ids["broken"]
    assert retrying["error"].type == "ValueError"
    [failed] = _of(events, "job-failed")
    assert failed["job"].id == ids["broken"]
    assert failed["error"].message == "no luck"
    for kwargs in (retrying, failed):  # the exception the task raised, with its frames
        assert isinstance(kwargs["exception"], ValueError)
        assert kwargs["exception"].__traceback__.tb_next is not None
        assert kwargs["duration"] >= 0.0
    assert retrying["exception"] is not failed["exception"]
    assert _of(events, "job-cancelled") == []


def test_cancelled_and_lease_expired(make_app: AppFactory, ext: JobQ) -> None:
    @ext.task("patient")
    def patient() -> None:
        jobq.current_job().wait_for_cancel(10.0)

    @ext.task("lost")
    def lost() -> str:
        return "rescued"

    app = make_app(JOBQ_LEASE_SECONDS=0.3, TESTING=False)
    queue = state_for(app).queue
    with recording(signals.job_cancelled, signals.job_lease_expired, signals.job_started) as ev:
        with app.app_context():
            lost_job = lost.enqueue()
        # A worker elsewhere claims it and dies: its lease lapses.
        [claimed] = queue.storage.claim(
            ["default"], owner="ghost", now=queue.clock.now(), lease_seconds=0.3, limit=1
        )
        assert claimed.id == lost_job.id
        state_for(app).start_workers()
        eventually(lambda: queue.get(lost_job.id).status is jobq.JobStatus.COMPLETED)
        with app.app_context():
            patient_job = patient.enqueue()
        eventually(lambda: queue.get(patient_job.id).status is jobq.JobStatus.PROCESSING)
        queue.cancel(patient_job.id)
        eventually(lambda: queue.get(patient_job.id).status is jobq.JobStatus.CANCELLED)
    [expired] = _of(ev, "job-lease-expired", app)
    assert expired["requeued"] == (lost_job.id,)
    [cancelled] = _of(ev, "job-cancelled", app)
    assert cancelled["job"].id == patient_job.id


def test_a_raising_receiver_breaks_nothing(
    make_app: AppFactory, ext: JobQ, caplog: pytest.LogCaptureFixture
) -> None:
    @ext.task("fine")
    def fine() -> str:
        return "done"

    app = make_app(TESTING=False)

    @app.post("/go")
    def go() -> dict[str, int]:
        return {"id": fine.enqueue().id}

    def explode(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    with (
        signals.job_enqueued.connected_to(explode),
        signals.job_started.connected_to(explode),
        signals.job_succeeded.connected_to(explode),
        signals.worker_started.connected_to(explode),
        recording(signals.job_succeeded) as events,
        caplog.at_level(logging.ERROR, logger="jobq.signals"),
    ):
        with app.test_client() as client:
            response = client.post("/go")
        assert response.status_code == 200
        job_id = response.get_json()["id"]
        queue = state_for(app).queue
        eventually(lambda: queue.get(job_id).status is jobq.JobStatus.COMPLETED)
        eventually(lambda: len(events) == 1)  # the other receiver still heard of it
        pool = state_for(app).pool
        assert pool is not None
        assert pool.is_alive
    assert queue.get(job_id).decoded_result() == "done"
    raised = [r for r in caplog.records if "receiver bug" in str(r.exc_info and r.exc_info[1])]
    assert len(raised) == 4  # enqueued, worker started, job started, job succeeded
