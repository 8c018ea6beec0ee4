"""The monitor's running-jobs endpoint shows a thread stuck in a task past its timeout."""

from __future__ import annotations

import threading

from flask_jobq import state_for
from flask_jobq.views import BLUEPRINT_NAME, register_monitor
from tests.helpers import BOUNDED_WAIT, AppFactory, eventually


def test_running_shows_a_thread_stuck_past_its_timeout(make_app: AppFactory) -> None:
    app = make_app("stuck", JOBQ_START_WORKERS=False, JOBQ_POLL_INTERVAL=0.005)
    if BLUEPRINT_NAME not in app.blueprints:
        register_monitor(app)
    state = state_for(app)
    release = threading.Event()
    started = threading.Event()

    # A real (tiny) timeout: the Flask extension's queue reads the real clock.
    @state.queue.task("hang", timeout=0.01)
    def hang() -> None:
        started.set()
        release.wait(BOUNDED_WAIT)

    job = hang.enqueue()
    pool = state.start_workers()
    client = app.test_client()
    try:
        assert started.wait(BOUNDED_WAIT)
        eventually(lambda: any(entry["stuck"] for entry in pool.running()))
        body = client.get("/jobq/running").get_json()
        [entry] = body["running"]
        assert entry["id"] == job.id
        assert entry["timed_out"] is True
        assert entry["stuck"] is True
        assert entry["stuck_since"] >= entry["started_at"]
    finally:
        release.set()
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert client.get("/jobq/running").get_json()["running"] == []
