"""The dashboard in a real browser (headless Chromium): every page opens without a
console error or a CSP violation, the actions work by clicking, job data renders as
text, a forged form post is refused, the live refresh follows the queue, and a
worker process appears and, once killed, disappears."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from jobq import JobStatus
from tests.browser._app import CHILD_LEASE_SECONDS
from tests.browser._browser import screenshot
from tests.browser.conftest import Served
from tests.helpers import enqueue, started_process, wait_for

PAGES = [
    ("overview", "/jobq/", "Overview"),
    ("jobs", "/jobq/ui/jobs", "Jobs"),
    ("workers", "/jobq/ui/workers", "Workers"),
    ("queues", "/jobq/ui/queues", "Queues"),
    ("schedules", "/jobq/ui/schedules", "Schedules"),
]


def _seed(served: Served) -> dict[str, int]:
    queue = served.queue
    done = [enqueue(queue, "add", n, n) for n in range(30)]
    failed = enqueue(queue, "explode", "gears jammed")
    wait_for(
        lambda: (
            queue.get(failed.id).status is JobStatus.FAILED
            and queue.get(done[-1].id).status is JobStatus.COMPLETED
        ),
        "the seeded jobs ran",
    )
    queue.schedule("add", every=3600, name="hourly-add", args=[1, 2])
    queue.schedule("echo", cron="0 3 * * *", tz="Europe/Paris", name="nightly", args=["hi"])
    return {"failed": failed.id, "done": done[0].id}


def test_every_page_opens_cleanly_and_is_saved_as_a_screenshot(page: Any, served: Served) -> None:
    ids = _seed(served)
    for name, path, heading in PAGES:
        response = page.goto(served.url + path)
        assert response.status == 200, path
        assert page.locator("h1").first.inner_text().startswith(heading)
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        page.wait_for_load_state("networkidle")
        screenshot(page, name)
    page.goto(f"{served.url}/jobq/ui/jobs/{ids['failed']}")
    screenshot(page, "job-failed")
    page.goto(f"{served.url}/jobq/ui/jobs/{ids['done']}")
    screenshot(page, "job-completed")
    page.emulate_media(color_scheme="dark")
    page.goto(f"{served.url}/jobq/ui/jobs/{ids['failed']}")
    screenshot(page, "job-failed-dark")
    page.emulate_media(color_scheme="light")
    # The navigation bar reaches every page.
    page.goto(served.url + "/jobq/ui/")
    for name, _, heading in PAGES:
        page.get_by_role("navigation", name="Pages").get_by_role("link", name=heading).click()
        assert page.locator("h1").first.inner_text().startswith(heading), name


def test_a_failed_job_is_found_by_filter_and_its_traceback_read(page: Any, served: Served) -> None:
    ids = _seed(served)
    page.goto(served.url + "/jobq/ui/jobs")
    page.select_option("select[name=status]", "failed")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.jobs tbody tr")
    assert rows.count() == 1
    rows.first.get_by_role("link", name=str(ids["failed"])).click()

    traceback = page.locator("#traceback").inner_text()

    assert "Traceback (most recent call last)" in traceback
    assert "RuntimeError: the widget broke: gears jammed" in traceback
    assert page.url.endswith(f"/jobq/ui/jobs/{ids['failed']}")


def test_a_payload_holding_a_script_renders_as_text(page: Any, served: Served) -> None:
    hostile = "<script>window.__owned = 1</script><img src=x onerror='window.__owned=2'>"
    job = enqueue(served.queue, "echo", hostile)
    wait_for(lambda: served.queue.get(job.id).status is JobStatus.COMPLETED, "echo ran")

    page.goto(f"{served.url}/jobq/ui/jobs/{job.id}")

    assert hostile in page.locator("#payload").inner_text()
    assert page.evaluate("window.__owned") is None
    assert page.locator("main img").count() == 0


def test_pausing_and_resuming_a_queue_by_its_buttons(page: Any, served: Served) -> None:
    _seed(served)
    page.goto(served.url + "/jobq/ui/queues")
    row = page.locator("tr[data-queue=default]")

    row.get_by_role("button", name="Pause").click()

    assert page.locator(".notice").inner_text() == "queue 'default' paused"
    assert served.queue.stats().paused == frozenset({"default"})
    assert page.locator("tr[data-queue=default] .badge").inner_text() == "paused"
    screenshot(page, "queues-paused")
    job = enqueue(served.queue, "add", 2, 2)
    page.locator("tr[data-queue=default]").get_by_role("button", name="Resume").click()
    assert served.queue.stats().paused == frozenset()
    wait_for(lambda: served.queue.get(job.id).status is JobStatus.COMPLETED, "resumed job ran")


def test_a_post_without_the_csrf_token_is_refused(page: Any, served: Served) -> None:
    page.on("console", lambda message: None)
    _seed(served)
    page.goto(served.url + "/jobq/ui/queues")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")

    page.locator("tr[data-queue=default]").get_by_role("button", name="Pause").click()

    assert "nothing was done" in page.locator("main").inner_text()
    assert page.locator("[data-live]").count() == 0  # the refusal is not refreshed away
    assert served.queue.stats().paused == frozenset()
    served.messages[:] = [m for m in served.messages if "403" not in m]  # the refusal itself


def test_the_live_refresh_shows_new_counts_without_a_reload(page: Any, served: Served) -> None:
    _seed(served)
    served.queue.pause("mail")
    page.goto(served.url + "/jobq/ui/")
    marker = page.evaluate("window.__marker = 'same page'")
    assert marker == "same page"
    pending = page.locator("a.card-pending .card-count")
    assert pending.inner_text() == "0"

    for n in range(25):
        enqueue(served.queue, "flaky", n)

    from playwright.sync_api import expect

    expect(pending).to_have_text("25", timeout=15_000)  # polled by Playwright, no reload
    assert page.evaluate("window.__marker") == "same page"  # refreshed in place
    assert page.locator("#live-state").inner_text() == "live"


def test_the_live_refresh_pauses_while_a_filter_is_being_edited(page: Any, served: Served) -> None:
    from playwright.sync_api import expect

    page.goto(served.url + "/jobq/ui/jobs")
    state = page.locator("#live-state")
    expect(state).to_have_text("live")

    page.locator("input[name=task]").fill("ad")  # focused, half typed

    expect(state).to_have_text("paused while editing", timeout=10_000)
    assert page.locator("input[name=task]").input_value() == "ad"  # not swapped away
    page.locator("input[name=task]").blur()
    expect(state).to_have_text("live", timeout=10_000)


def test_a_worker_process_appears_with_its_threads_and_disappears_once_killed(
    page: Any, served: Served, tmp_path: Any
) -> None:
    database = str(served.folder / "jobs.db")
    args = [sys.executable, "-m", "jobq.cli", "worker", "--app", "tests.browser._app:child_queue"]
    env = {**os.environ, "JOBQ_BROWSER_DB": database}
    page.goto(served.url + "/jobq/ui/workers")
    assert page.locator("section.worker").count() == 1  # the app's own pool
    assert f"pid {os.getpid()}" in page.locator("main").inner_text()
    held = enqueue(served.queue, "hold_until_released", queue="child")

    with started_process(args, log=tmp_path / "worker.log", env=env) as child:
        worker = page.locator(f"section.worker:has-text('pid {child.pid}')")
        worker.wait_for(timeout=20_000)  # the live refresh brings it in
        assert "child" in worker.inner_text()
        # Its running job, and the thread that runs it, from the registry's heartbeat.
        running = worker.locator(f"tr:has(a[href$='/jobq/ui/jobs/{held.id}'])")
        running.locator("td.mono >> text=/jobq/").wait_for(timeout=20_000)
        screenshot(page, "workers-two")
        thread = running.locator("td.mono >> text=/jobq/").inner_text()
        page.goto(f"{served.url}/jobq/ui/jobs/{held.id}")  # the job names its thread too
        facts = page.locator("dl.facts").inner_text()
        assert f"pid {child.pid}" in facts
        assert f"thread {thread}" in facts
        page.goto(served.url + "/jobq/ui/workers")

        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        worker.wait_for(state="detached", timeout=(CHILD_LEASE_SECONDS + 15) * 1000)

    assert page.locator("section.worker").count() == 1
    # The killed pool's job went back to pending for another worker (same host: at once).
    wait_for(lambda: served.queue.get(held.id).status is JobStatus.PENDING, "job released")


def test_jobs_are_filtered_by_an_argument(page: Any, served: Served) -> None:
    for user_id in range(40):
        enqueue(served.queue, "echo", f"user-{user_id % 4}")
    page.goto(served.url + "/jobq/ui/jobs")
    page.fill("input[name=task]", "echo")
    page.locator("input[name=arg]").last.fill("text=user-3")
    page.get_by_role("button", name="Filter").click()

    rows = page.locator("table.jobs tbody tr")

    assert rows.count() == 10
    assert "arg=text%3Duser-3" in page.url
    screenshot(page, "jobs-filtered-by-argument")
    page.locator("table.jobs tbody a").first.click()
    assert '"user-3"' in page.locator("#payload").inner_text()


def test_a_bulk_retry_of_1000_failed_jobs_is_confirmed_and_watched_to_completion(
    page: Any, served: Served
) -> None:
    from playwright.sync_api import expect

    queue = served.queue
    for n in range(1000):
        enqueue(queue, "flaky", n)
    wait_for(lambda: queue.stats().queues["mail"].counts[JobStatus.FAILED] == 1000, "all failed")
    page.goto(served.url + "/jobq/ui/jobs?status=failed&queue=mail")
    page.get_by_role("button", name="Retry all…").click()
    assert page.locator("#bulk-count").inner_text().replace("\u2009", "") == "1000"
    screenshot(page, "bulk-confirm")
    (served.folder / "fixed").touch()  # from now on the task succeeds

    page.get_by_role("button", name="Retry 1").click()

    assert "retried 1" in page.locator(".notice").inner_text()
    page.goto(served.url + "/jobq/ui/")
    completed = page.locator("a.card-completed .card-count")
    expect(completed).to_have_text("1\u2009000", timeout=60_000)  # the live refresh follows
    assert page.locator("a.card-failed .card-count").inner_text() == "0"
    screenshot(page, "overview-after-bulk-retry")


def test_a_job_shows_its_attempts_and_timeline(page: Any, served: Served) -> None:
    job = enqueue(served.queue, "explode", "twice", max_attempts=2)
    wait_for(lambda: served.queue.get(job.id).status is JobStatus.FAILED, "failed twice", 60)

    page.goto(f"{served.url}/jobq/ui/jobs/{job.id}")

    assert page.locator("table.attempts tbody tr").count() == 2
    kinds = page.locator(".timeline .event-kind").all_inner_texts()
    assert kinds[0] == "enqueued"
    assert kinds.count("claimed") == 2
    assert kinds[-1] == "failed"
    page.locator("table.attempts summary").first.click()
    assert "the widget broke: twice" in page.locator("table.attempts pre").first.inner_text()
    screenshot(page, "job-attempts")


def test_the_pages_work_without_javascript(browser: Any, served: Served) -> None:
    ids = _seed(served)
    first_failure = served.queue.get(ids["failed"]).finished_at
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{served.url}/jobq/ui/jobs/{ids['failed']}")
        page.get_by_role("button", name="Retry").click()
        assert "queued again" in page.locator(".notice").inner_text()
        wait_for(
            lambda: (served.queue.get(ids["failed"]).finished_at or 0) > (first_failure or 0),
            "the retried job ran (and failed) again",
        )
        assert served.queue.get(ids["failed"]).status is JobStatus.FAILED
        page.goto(served.url + "/jobq/ui/schedules")
        page.locator("tr[data-schedule=nightly]").get_by_role("button", name="Pause").click()
        assert [s.paused for s in served.queue.schedules() if s.name == "nightly"] == [True]
        assert page.locator("#live-state").is_hidden()
    finally:
        context.close()
