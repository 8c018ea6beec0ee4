"""The HTML dashboard through Flask's test client: content negotiation at ``/jobq/``,
the headers of every answer, escaping of job data, the CSRF check of every form,
the authorisation it shares with the monitor, and each page's data."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient

import jobq
from flask_jobq import state_for
from flask_jobq.dashboard.security import CONTENT_SECURITY_POLICY, CSRF_COOKIE
from tests.helpers import enqueue

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PAGES = ["/jobq/", "/jobq/ui/", "/jobq/ui/jobs", "/jobq/ui/workers", "/jobq/ui/queues",
         "/jobq/ui/schedules"]  # fmt: skip


class _Inline(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, style elements and
    attributes, event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems.extend(f"{name} on <{tag}>" for name in names if name.startswith("on"))


def inline_problems(html: str) -> list[str]:
    parser = _Inline()
    parser.feed(html)
    return parser.problems


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url, headers=HTML)
    assert response.status_code == status, (url, response.status_code, response.data[:300])
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


@pytest.fixture
def seeded(app: Flask) -> jobq.DurableQueue:
    queue = state_for(app).queue
    enqueue(queue, "add", 1, 2)
    enqueue(queue, "fail")
    enqueue(queue, "report", 3)
    queue.run_until_empty(queues=["default", "other"])
    enqueue(queue, "add", 3, 4)
    queue.schedule("add", every=3600, name="hourly-add", args=[1, 2])
    return queue


# -- negotiation and headers ----------------------------------------------------------


def test_the_prefix_answers_html_to_browsers_and_the_json_index_to_other_clients(
    app: Flask, seeded: jobq.DurableQueue
) -> None:
    client = app.test_client()
    for path in ("/jobq", "/jobq/"):
        browser = client.get(path, headers=HTML, follow_redirects=True)
        assert browser.mimetype == "text/html"
        assert "<h1>Overview</h1>" in browser.get_data(as_text=True)
        assert "Accept" in browser.headers["Vary"]
        for accept in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
            answer = client.get(path, headers=accept, follow_redirects=True)
            assert answer.is_json, (path, accept)
            assert answer.get_json()["links"]["jobs"] == "/jobq/jobs"


@pytest.mark.parametrize("url", PAGES)
def test_every_page_carries_the_security_headers_and_nothing_inline(
    app: Flask, seeded: jobq.DurableQueue, url: str
) -> None:
    response = app.test_client().get(url, headers=HTML)

    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert inline_problems(response.get_data(as_text=True)) == []


def test_assets_are_served_from_the_package_with_the_headers(app: Flask) -> None:
    client = app.test_client()
    html = page(client, "/jobq/ui/")
    assets = re.findall(r'(?:href|src)="(/jobq/ui/static/[^"]+)"', html)
    assert len(set(assets)) == 3
    for url in set(assets):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.mimetype in ("text/css", "text/javascript", "image/svg+xml")
        again = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
    missing = client.get("/jobq/ui/static/jobq/../../views.py")
    assert missing.status_code == 404


# -- escaping -------------------------------------------------------------------------


def test_job_data_is_escaped_everywhere_it_is_shown(app: Flask) -> None:
    queue = state_for(app).queue

    def hostile(text: str) -> None:
        raise ValueError(f"<script>alert('error')</script>{text}")

    queue.task("<img src=x onerror=alert(1)>", queue="<b>q</b>")(hostile)
    job = enqueue(queue, "<img src=x onerror=alert(1)>", "<script>alert('payload')</script>")
    queue.run_until_empty(queues=["<b>q</b>"])
    client = app.test_client()

    for url in (f"/jobq/ui/jobs/{job.id}", "/jobq/ui/jobs", "/jobq/ui/", "/jobq/ui/queues"):
        html = page(client, url)
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
        assert "<b>q</b>" not in html, url
        assert inline_problems(html) == [], url
    detail = page(client, f"/jobq/ui/jobs/{job.id}")
    assert "&lt;script&gt;alert(&#39;payload&#39;)&lt;/script&gt;" in detail
    assert "&lt;script&gt;alert(&#39;error&#39;)&lt;/script&gt;" in detail  # error and traceback


def test_payloads_can_be_hidden(monitor_app: Callable[..., Flask]) -> None:
    app = monitor_app(JOBQ_MONITOR_SHOW_PAYLOADS=False)
    job = enqueue(state_for(app).queue, "add", 4242, 1)

    html = page(app.test_client(), f"/jobq/ui/jobs/{job.id}")

    assert "4242" not in html
    assert "JOBQ_MONITOR_SHOW_PAYLOADS" in html


# -- authorisation --------------------------------------------------------------------


def test_the_dashboard_is_closed_without_an_authorisation_callback(
    monitor_app: Callable[..., Flask],
) -> None:
    app = monitor_app()
    app.testing = False  # production: no callback, every request refused
    client = app.test_client()
    for url in [*PAGES, "/jobq/ui/jobs/1", "/jobq/ui/static/jobq/dashboard.css"]:
        response = client.get(url, headers=HTML)
        assert response.status_code == 403, url
        assert b"Overview" not in response.data
        if url != "/jobq/":  # the monitor's own index refuses as JSON, plainly
            assert response.headers["X-Frame-Options"] == "DENY"
    refused = client.post("/jobq/ui/queues", data={"queue": "default", "action": "pause"})
    assert refused.status_code == 403
    assert state_for(app).queue.stats().paused == frozenset()


def test_a_callback_decides_for_the_dashboard_as_for_the_monitor(
    monitor_app: Callable[..., Flask],
) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=lambda: False)
    assert app.test_client().get("/jobq/ui/", headers=HTML).status_code == 403
    app.config["JOBQ_MONITOR_AUTH"] = lambda: True
    app.testing = False
    assert app.test_client().get("/jobq/ui/", headers=HTML).status_code == 200


# -- forms and CSRF -------------------------------------------------------------------


def test_the_csrf_cookie_is_http_only_strict_and_scoped_to_the_prefix(app: Flask) -> None:
    response = app.test_client().get("/jobq/ui/queues", headers=HTML)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(CSRF_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/jobq;" in cookie or cookie.endswith("Path=/jobq")


def test_a_post_without_a_valid_token_is_refused_and_changes_nothing(
    app: Flask, seeded: jobq.DurableQueue
) -> None:
    client = app.test_client()
    token = form_token(page(client, "/jobq/ui/queues"))  # the cookie is set now
    attempts = [
        {"queue": "default", "action": "pause"},  # no field
        {"queue": "default", "action": "pause", "csrf_token": "x" * 43},  # wrong field
    ]
    for form in attempts:
        refused = client.post("/jobq/ui/queues", data=form)
        assert refused.status_code == 403
        assert refused.mimetype == "text/html"
        assert "nothing was done" in refused.get_data(as_text=True)
        assert refused.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    stranger = app.test_client()  # the right field, but no cookie: another browser
    form = {"queue": "default", "action": "pause", "csrf_token": token}
    assert stranger.post("/jobq/ui/queues", data=form).status_code == 403
    assert seeded.stats().paused == frozenset()


def test_a_signed_cookie_is_required_when_the_app_has_a_secret_key(
    monitor_app: Callable[..., Flask],
) -> None:
    app = monitor_app(SECRET_KEY="s3cret")
    enqueue(state_for(app).queue, "add", 1, 1)  # a queue, and its pause button
    client = app.test_client()
    token = form_token(page(client, "/jobq/ui/queues"))
    assert client.get_cookie(CSRF_COOKIE, path="/jobq").value.startswith(token + ".")
    planted = app.test_client()  # a cookie set by a sibling sub-domain: unsigned
    planted.set_cookie(CSRF_COOKIE, token, path="/jobq")
    form = {"queue": "default", "action": "pause", "csrf_token": token}

    assert planted.post("/jobq/ui/queues", data=form).status_code == 403
    assert client.post("/jobq/ui/queues", data=form).status_code == 303


def test_pausing_and_resuming_a_queue_redirects_and_says_so_once(
    app: Flask, seeded: jobq.DurableQueue
) -> None:
    client = app.test_client()
    token = form_token(page(client, "/jobq/ui/queues"))

    done = client.post(
        "/jobq/ui/queues", data={"queue": "other", "action": "pause", "csrf_token": token}
    )

    assert done.status_code == 303
    assert done.headers["Location"].endswith("/jobq/ui/queues")
    assert seeded.stats().paused == frozenset({"other"})
    shown = page(client, "/jobq/ui/queues")
    assert "queue &#39;other&#39; paused" in shown
    assert "queue &#39;other&#39; paused" not in page(client, "/jobq/ui/queues")  # once
    client.post("/jobq/ui/queues", data={"queue": "other", "action": "resume", "csrf_token": token})
    assert seeded.stats().paused == frozenset()


def test_jobs_are_cancelled_and_retried_from_their_page(
    app: Flask, seeded: jobq.DurableQueue
) -> None:
    client = app.test_client()
    failed = seeded.list(status="failed")[0]
    pending = seeded.list(status="pending")[0]
    html = page(client, f"/jobq/ui/jobs/{failed.id}")
    assert "Traceback" in html
    assert "it went wrong" in html
    token = form_token(html)

    retried = client.post(
        f"/jobq/ui/jobs/{failed.id}", data={"action": "retry", "csrf_token": token}
    )
    cancelled = client.post(
        f"/jobq/ui/jobs/{pending.id}", data={"action": "cancel", "csrf_token": token}
    )
    again = client.post(
        f"/jobq/ui/jobs/{pending.id}", data={"action": "cancel", "csrf_token": token}
    )

    assert (retried.status_code, cancelled.status_code, again.status_code) == (303, 303, 303)
    assert seeded.get(failed.id).status is jobq.JobStatus.PENDING
    assert seeded.get(pending.id).status is jobq.JobStatus.CANCELLED
    assert "already finished" in page(client, f"/jobq/ui/jobs/{pending.id}")
    bad = client.post(f"/jobq/ui/jobs/{pending.id}", data={"action": "drop", "csrf_token": token})
    assert bad.status_code == 400


def test_schedules_are_paused_resumed_and_triggered(app: Flask, seeded: jobq.DurableQueue) -> None:
    client = app.test_client()
    html = page(client, "/jobq/ui/schedules")
    assert "hourly-add" in html
    token = form_token(html)

    def act(action: str, name: str = "hourly-add") -> None:
        response = client.post(
            "/jobq/ui/schedules", data={"schedule": name, "action": action, "csrf_token": token}
        )
        assert response.status_code == 303

    act("pause")
    assert seeded.schedules()[0].paused
    act("resume")
    assert not seeded.schedules()[0].paused
    before = len(seeded.list(name="add", status="pending"))
    act("trigger")
    assert len(seeded.list(name="add", status="pending")) == before + 1
    assert "enqueued job" in page(client, "/jobq/ui/schedules")
    act("pause", "no such schedule")
    assert "no schedule named" in page(client, "/jobq/ui/schedules")


# -- pages ----------------------------------------------------------------------------


def test_the_jobs_page_filters_and_pages_both_ways(app: Flask) -> None:
    queue = state_for(app).queue
    ids = [enqueue(queue, "add", n, n).id for n in range(45)]
    client = app.test_client()

    def shown(url: str) -> list[int]:
        return [int(i) for i in re.findall(r'<a href="/jobq/ui/jobs/(\d+)">', page(client, url))]

    first = shown("/jobq/ui/jobs")
    assert first == ids[::-1][:20]
    html = page(client, "/jobq/ui/jobs")
    next_url = re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    second = shown(next_url)
    assert second == ids[::-1][20:40]
    html = page(client, next_url)
    previous_url = re.search(r'rel="prev" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert shown(previous_url) == first
    assert shown("/jobq/ui/jobs?sort=oldest&limit=50") == ids
    assert shown("/jobq/ui/jobs?status=failed") == []
    assert shown("/jobq/ui/jobs?task=add&queue=default&limit=100") == ids[::-1]
    for bad in ("status=lost", "limit=7", "sort=sideways", "after=-1"):
        assert client.get(f"/jobq/ui/jobs?{bad}", headers=HTML).status_code == 400, bad


def test_an_unknown_job_is_an_html_404(app: Flask) -> None:
    html = page(app.test_client(), "/jobq/ui/jobs/999999", status=404)
    assert "999999" in html


def test_the_overview_shows_counts_per_queue_and_the_last_minute(
    app: Flask, seeded: jobq.DurableQueue
) -> None:
    html = page(app.test_client(), "/jobq/ui/")
    assert 'href="/jobq/ui/jobs?queue=other"' in html
    assert "completed last minute" in html
    seeded.pause("other")
    assert "paused" in page(app.test_client(), "/jobq/ui/")


def test_the_workers_page_shows_a_live_pool_and_its_running_job(
    monitor_app: Callable[..., Flask],
) -> None:
    import threading

    app = monitor_app()
    queue = state_for(app).queue
    release = threading.Event()
    queue.task("wait")(lambda: release.wait(10))
    job = enqueue(queue, "wait")
    pool = state_for(app).start_workers()
    try:
        from tests.helpers import eventually

        # Claimed is not yet running: a thread takes the job a moment later.
        eventually(lambda: [int(entry["id"]) for entry in pool.running()] == [job.id])
        html = page(app.test_client(), "/jobq/ui/workers")
        [thread] = [entry["thread"] for entry in pool.running()]
        assert f'<td class="mono">{thread}</td>' in html  # the thread that runs it
        assert f"pid {pool.owner.split(':')[1]}" in html
        assert f'href="/jobq/ui/jobs/{job.id}"' in html
        assert "1 live" in html
    finally:
        release.set()


def test_every_template_and_asset_is_package_data() -> None:
    import configparser
    from fnmatch import fnmatch
    from pathlib import Path

    import flask_jobq

    package = Path(flask_jobq.__file__).parent
    config = configparser.ConfigParser()
    config.read(package.parent / "setup.cfg")
    patterns = config["options.package_data"]["flask_jobq"].split()
    shipped = [
        path.relative_to(package).as_posix()
        for folder in ("dashboard/templates", "dashboard/static")
        for path in (package / folder).rglob("*")
        if path.is_file()
    ]
    assert len(shipped) >= 10
    assert [name for name in shipped if not any(fnmatch(name, p) for p in patterns)] == []


# -- filters by arguments and time, bulk actions, history, threads ------------------------


def test_the_jobs_page_filters_by_argument_and_creation_time(app: Flask) -> None:
    queue = state_for(app).queue
    ids = {n: enqueue(queue, "add", n, n % 3).id for n in range(12)}
    client = app.test_client()

    def shown(url: str) -> set[int]:
        return {int(i) for i in re.findall(r'<a href="/jobq/ui/jobs/(\d+)">', page(client, url))}

    assert shown("/jobq/ui/jobs?task=add&arg=b%3D2") == {ids[n] for n in (2, 5, 8, 11)}
    assert shown("/jobq/ui/jobs?task=add&arg=a%3D7&arg=b%3D1") == {ids[7]}
    assert shown("/jobq/ui/jobs?task=add&arg=a%3D%227%22") == set()  # "7" is not 7
    assert shown("/jobq/ui/jobs?created_after=2999-01-01T00:00") == set()
    assert shown("/jobq/ui/jobs?created_before=2999-01-01T00:00&limit=50") == set(ids.values())
    html = page(client, "/jobq/ui/jobs?task=add&arg=b%3D2")
    assert 'value="b=2"' in html  # the filter stays in the form
    for bad in ("arg=b", "arg=1x%3D2", "created_after=yesterday"):
        assert client.get(f"/jobq/ui/jobs?{bad}", headers=HTML).status_code == 400, bad


def test_a_bulk_retry_is_counted_confirmed_then_run(app: Flask) -> None:
    queue = state_for(app).queue
    failed = [enqueue(queue, "fail").id for _ in range(7)]
    enqueue(queue, "add", 1, 1)
    queue.run_until_empty()
    client = app.test_client()
    jobs = page(client, "/jobq/ui/jobs?status=failed")
    assert 'name="action" value="retry"' in jobs

    confirm = page(client, "/jobq/ui/bulk?action=retry&status=failed&task=fail")

    assert '<strong id="bulk-count">7</strong>' in confirm
    assert "status failed, task fail" in confirm
    assert all(queue.get(job_id).status is jobq.JobStatus.FAILED for job_id in failed)
    form = {"action": "retry", "status": "failed", "task": "fail"}
    assert client.post("/jobq/ui/bulk", data=form).status_code == 403  # no token
    done = client.post("/jobq/ui/bulk", data={**form, "csrf_token": form_token(confirm)})
    assert done.status_code == 303
    assert "status=failed" in done.headers["Location"]
    assert all(queue.get(job_id).status is jobq.JobStatus.PENDING for job_id in failed)
    assert "retried 7 jobs" in page(client, "/jobq/ui/jobs")


def test_bulk_actions_count_only_the_jobs_they_act_on_and_need_a_filter(app: Flask) -> None:
    queue = state_for(app).queue
    for n in range(3):
        enqueue(queue, "add", n, n)
    client = app.test_client()
    html = page(client, "/jobq/ui/bulk?action=retry&task=add")
    assert '<strong id="bulk-count">0</strong>' in html  # pending jobs are not retried
    assert "Nothing to retry" in html
    assert '<strong id="bulk-count">3</strong>' in page(
        client, "/jobq/ui/bulk?action=cancel&task=add"
    )
    assert client.get("/jobq/ui/bulk?action=delete", headers=HTML).status_code == 400
    assert client.get("/jobq/ui/bulk?action=drop&task=add", headers=HTML).status_code == 400
    token = form_token(page(client, "/jobq/ui/bulk?action=delete&task=add"))
    client.post("/jobq/ui/bulk", data={"action": "delete", "task": "add", "csrf_token": token})
    assert queue.count(name="add") == 0


def test_the_job_page_shows_each_failed_attempt_and_the_timeline(app: Flask) -> None:
    queue = state_for(app).queue
    job = enqueue(queue, "fail")
    queue.run_until_empty()

    html = page(app.test_client(), f"/jobq/ui/jobs/{job.id}")

    assert "Attempts that did not complete" in html
    assert html.count("<details>") == 1  # jobq.Fail: one attempt, with its traceback
    assert "it went wrong" in html
    assert "Timeline" in html
    for kind in ("enqueued", "claimed", "failed"):
        assert f'<span class="event-kind">{kind}</span>' in html, kind


def test_the_overview_charts_the_throughput(app: Flask, seeded: jobq.DurableQueue) -> None:
    html = page(app.test_client(), "/jobq/ui/")
    assert html.count("<svg") == 2
    assert 'class="bar-completed"' in html
    assert 'class="bar-failed"' in html
    assert "<title>" in html  # each bar says its figures


def test_a_job_page_shows_what_the_job_waits_for_with_links(
    app: Flask, seeded: jobq.DurableQueue
) -> None:
    client = app.test_client()
    first = seeded.list(status="pending")[0]
    add = seeded.get_task("add")
    waiting = add.options(depends_on=[first]).enqueue(5, 6)
    html = page(client, f"/jobq/ui/jobs/{waiting.id}")
    assert "for 1 job to complete" in html
    assert f'href="/jobq/ui/jobs/{first.id}"' in html
    assert "if one fails: cancel" in html
    before = page(client, f"/jobq/ui/jobs/{first.id}")
    assert "Runs before" in before
    assert f'href="/jobq/ui/jobs/{waiting.id}"' in before
    assert "waiting for 1" in page(client, "/jobq/ui/jobs?status=pending")
