"""The dashboard and the JSON monitor on Redis, unchanged, in a real browser
(headless Chromium): the app's ``JOBQ_DATABASE`` is a ``redis://`` URL on the test
Redis server, and every page opens without a console error or a CSP violation,
the filters find what they should, and the buttons (retry, cancel, pause and
resume a queue, pause a schedule, run it now, cancel a batch, bulk retry) act
on the jobs kept in Redis. The same pages on SQLite: test_pages.py and
test_batch_page.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from flask_jobq import state_for
from jobq import JobStatus
from tests.browser._app import make_app, release
from tests.browser._browser import screenshot
from tests.browser.conftest import Served
from tests.helpers import drop_redis_prefix, enqueue, redis_location, redis_test_prefix, wait_for

pytestmark = pytest.mark.redis

PAGES = [
    ("/jobq/", "Overview"),
    ("/jobq/ui/jobs", "Jobs"),
    ("/jobq/ui/workers", "Workers"),
    ("/jobq/ui/queues", "Queues"),
    ("/jobq/ui/schedules", "Schedules"),
    ("/jobq/ui/batches", "Batches"),
]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """conftest.py's ``served``, with the queue in Redis under a prefix of its own."""
    prefix = redis_test_prefix()
    monkeypatch.setenv("JOBQ_BROWSER_DIR", str(tmp_path))
    release.clear()
    url = redis_location(prefix).partition("#")[0]
    app = make_app(tmp_path / "unused.db", JOBQ_METRICS=True, JOBQ_METRICS_AUTH=lambda: True)
    app.config["JOBQ_DATABASE"] = f"{url}?prefix={prefix}&durability=ignore"
    state = state_for(app)
    state.start_workers()
    assert type(state.queue.storage).__name__ == "RedisStorage"
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server")
    thread.start()
    try:
        yield Served(app, f"http://127.0.0.1:{server.server_port}", tmp_path)
    finally:
        release.set()
        server.shutdown()
        thread.join(10)
        server.server_close()
        state.close(timeout=10)
        drop_redis_prefix(prefix)


def _seed(served: Served) -> dict[str, int]:
    queue = served.queue
    done = [enqueue(queue, "add", n, n) for n in range(30)]
    failed = enqueue(queue, "explode", "gears jammed", max_attempts=2)
    with queue.batch(on_complete="echo", meta={"newsletter": 7}) as batch:
        batch.enqueue_many("add", [(n, n) for n in range(5)])
    wait_for(
        lambda: (
            queue.get(failed.id).status is JobStatus.FAILED
            and queue.get(done[-1].id).status is JobStatus.COMPLETED
            and batch.status().finished
        ),
        "the seeded jobs ran",
        60,
    )
    queue.schedule("add", every=3600, name="hourly-add", args=[1, 2])
    queue.schedule("echo", cron="0 3 * * *", tz="Europe/Paris", name="nightly", args=["hi"])
    return {"failed": failed.id, "done": done[0].id, "batch": batch.id}


def test_every_page_and_json_endpoint_works_on_redis(page: Any, served: Served) -> None:
    ids = _seed(served)
    for path, heading in PAGES:
        response = page.goto(served.url + path)
        assert response.status == 200, path
        assert page.locator("h1").first.inner_text().startswith(heading), path
        page.wait_for_load_state("networkidle")
    screenshot(page, "redis-batches")

    # A job's page: its attempts and timeline, from the history kept in Redis.
    page.goto(f"{served.url}/jobq/ui/jobs/{ids['failed']}")
    assert page.locator("table.attempts tbody tr").count() == 2
    kinds = page.locator(".timeline .event-kind").all_inner_texts()
    assert (kinds[0], kinds.count("claimed"), kinds[-1]) == ("enqueued", 2, "failed")
    assert "the widget broke: gears jammed" in page.locator("#traceback").inner_text()
    screenshot(page, "redis-job-failed")

    # Filters: by status (the form), by task and argument.
    page.goto(served.url + "/jobq/ui/jobs")
    page.select_option("select[name=status]", "failed")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table.jobs tbody tr").count() == 1
    page.goto(served.url + "/jobq/ui/jobs?task=add&arg=a%3D7")
    assert page.locator("table.jobs tbody tr").count() == 1
    page.goto(served.url + "/jobq/ui/jobs?status=completed&queue=default&limit=50")
    assert page.locator("table.jobs tbody tr").count() >= 30

    # The batch, from the list to its page and its callback job.
    page.goto(served.url + "/jobq/ui/batches")
    page.get_by_role("link", name=f"batch {ids['batch']}", exact=True).click()
    assert page.locator("h1").first.inner_text().startswith(f"Batch {ids['batch']}")
    assert page.locator("#batch-ended").inner_text() == "5 of 5 jobs ended"

    # The JSON monitor, beside the pages.
    api = served.url + "/jobq"
    for path in [
        "/",
        "/stats",
        "/jobs?status=failed",
        "/jobs/count?status=completed",
        f"/jobs/{ids['failed']}",
        f"/jobs/{ids['failed']}/attempts",
        f"/jobs/{ids['failed']}/logs",
        "/throughput",
        "/batches",
        f"/batches/{ids['batch']}",
        "/schedules",
        "/workers",
        "/running",
        "/health",
        "/metrics",
        "/openapi.json",
    ]:
        assert page.request.get(api + path).status == 200, path
    failed = page.request.get(api + "/jobs?status=failed").json()
    assert [job["id"] for job in failed["jobs"]] == [ids["failed"]]
    stats = page.request.get(api + "/stats").json()
    assert stats["totals"]["failed"] == 1
    assert page.request.get(api + "/workers").json()["workers"]


def test_the_buttons_act_on_jobs_kept_in_redis(page: Any, served: Served) -> None:
    ids = _seed(served)
    queue = served.queue

    # Retry a failed job from its page.
    first_failure = queue.get(ids["failed"]).finished_at or 0
    page.goto(f"{served.url}/jobq/ui/jobs/{ids['failed']}")
    page.get_by_role("button", name="Retry").click()
    assert "queued again" in page.locator(".notice").inner_text()
    wait_for(
        lambda: (queue.get(ids["failed"]).finished_at or 0) > first_failure,
        "the retried job ran (and failed) again",
    )

    # Pause a queue by its button; cancel a job waiting there; resume.
    page.goto(served.url + "/jobq/ui/queues")
    page.locator("tr[data-queue=default]").get_by_role("button", name="Pause").click()
    assert queue.stats().paused == frozenset({"default"})
    waiting = enqueue(queue, "add", 1, 1)
    page.goto(f"{served.url}/jobq/ui/jobs/{waiting.id}")
    page.get_by_role("button", name="Cancel").click()
    assert "cancelled" in page.locator(".notice").inner_text()
    assert queue.get(waiting.id).status is JobStatus.CANCELLED

    # Cancel a batch whose jobs wait in the paused queue.
    batch = queue.batch(on_complete="echo")
    batch.enqueue_many("add", [(1, 1), (2, 2), (3, 3)])
    page.goto(f"{served.url}/jobq/ui/batches/{batch.id}")
    page.get_by_role("button", name="Cancel batch").click()
    page.wait_for_url(f"**/ui/batches/{batch.id}")
    state = batch.status()
    assert (state.cancelled, state.sealed) == (3, True)
    page.goto(served.url + "/jobq/ui/queues")
    page.locator("tr[data-queue=default]").get_by_role("button", name="Resume").click()
    assert queue.stats().paused == frozenset()

    # Schedules: pause one, run the other now.
    page.goto(served.url + "/jobq/ui/schedules")
    page.locator("tr[data-schedule=nightly]").get_by_role("button", name="Pause").click()
    assert [s.paused for s in queue.schedules() if s.name == "nightly"] == [True]
    before = queue.count(name="add")
    page.locator("tr[data-schedule=hourly-add]").get_by_role("button", name="Run now").click()
    assert queue.count(name="add") == before + 1

    # Bulk retry of every failed job in the mail queue.
    for n in range(20):
        enqueue(queue, "flaky", n)
    wait_for(lambda: queue.stats().queues["mail"].counts[JobStatus.FAILED] == 20, "all failed")
    (served.folder / "fixed").touch()
    page.goto(served.url + "/jobq/ui/jobs?status=failed&queue=mail")
    page.get_by_role("button", name="Retry all…").click()
    assert page.locator("#bulk-count").inner_text() == "20"
    page.get_by_role("button", name="Retry 20").click()
    assert "retried 20" in page.locator(".notice").inner_text()
    wait_for(
        lambda: queue.stats().queues["mail"].counts.get(JobStatus.COMPLETED, 0) == 20,
        "the retried jobs ran",
    )
    screenshot(page, "redis-after-bulk-retry")
