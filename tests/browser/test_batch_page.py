"""A batch's page in a real browser (headless Chromium): counts, the callback job's
link, the link from a job to its batch, and the cancel button, without a console
error or a CSP violation."""

from __future__ import annotations

from typing import Any

from jobq import JobStatus
from tests.browser._browser import screenshot
from tests.browser.conftest import Served
from tests.helpers import wait_for


def test_a_batch_page_shows_its_counts_and_cancels_by_its_button(page: Any, served: Served) -> None:
    queue = served.queue
    with queue.batch(on_complete="echo", meta={"newsletter": 7}) as batch:
        ids = batch.enqueue_many("add", [(n, n) for n in range(5)])
    wait_for(
        lambda: (
            batch.status().finished
            and queue.get(batch.status().callback_job_ids[0]).status is JobStatus.COMPLETED
        ),
        "the batch and its callback ran",
    )
    (callback,) = batch.status().callback_job_ids
    page.goto(f"{served.url}/jobq/ui/jobs/{ids[0]}")
    page.get_by_role("link", name=f"batch {batch.id}").click()
    assert page.locator("h1").first.inner_text().startswith(f"Batch {batch.id}")
    assert page.locator("#batch-ended").inner_text() == "5 of 5 jobs ended"
    assert page.locator("#batch-progress").get_attribute("value") == "5"
    screenshot(page, "batch-finished")
    page.get_by_role("link", name=f"job {callback}").click()
    assert page.locator("h1").first.inner_text().startswith(f"Job {callback}")

    queue.pause("default")  # so its jobs stay pending until the button is clicked
    waiting = queue.batch(on_complete="echo")
    waiting.enqueue_many("add", [(1, 1), (2, 2), (3, 3)])
    page.goto(f"{served.url}/jobq/ui/batches/{waiting.id}")
    page.get_by_role("button", name="Cancel batch").click()
    page.wait_for_url(f"**/ui/batches/{waiting.id}")
    assert "cancelled" in page.locator("body").inner_text()
    state = waiting.status()
    assert (state.cancelled, state.sealed) == (3, True)
    queue.resume("default")
