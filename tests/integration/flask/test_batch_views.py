"""Batches in the monitor (``GET /jobq/batches``, ``GET /jobq/batches/<id>``,
``POST /jobq/batches/<id>/cancel``) and through ``flask jobq batch``; answers are
checked against the OpenAPI description."""

from __future__ import annotations

import json

from flask import Flask

import jobq
from tests.helpers import Monitor


def _finished_batch(queue: jobq.DurableQueue) -> int:
    with queue.batch(on_complete="report", meta={"newsletter": 7}) as batch:
        batch.enqueue_many("add", [(1, 2), (3, 4)])
        batch.enqueue("fail")
    queue.run_until_empty(queues=["default"])
    return batch.id


def test_a_batch_and_the_list_show_counts_and_callbacks(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    done = _finished_batch(queue)
    body = monitor.get(f"/batches/{done}").get_json()
    assert (body["total"], body["completed"], body["failed"], body["ended"]) == (3, 2, 1, 3)
    assert body["finished"]
    assert body["meta"] == {"newsletter": 7}
    (callback,) = body["callback_job_ids"]
    assert monitor.get(f"/jobs/{callback}").get_json()["name"] == "report"
    job = monitor.get(f"/jobs/{callback - 1}").get_json()
    assert job["batch_id"] == done
    open_one = queue.batch(on_complete="report")
    listing = monitor.get("/batches?limit=5").get_json()["batches"]
    assert [b["id"] for b in listing] == [open_one.id, done]
    assert [
        b["id"] for b in monitor.get(f"/batches?before={open_one.id}").get_json()["batches"]
    ] == [done]
    assert monitor.get("/").get_json()["links"]["batches"] == "/jobq/batches"


def test_cancel_and_bad_requests(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    batch = queue.batch(on_complete="report")
    batch.enqueue_many("add", [(1, 2), (3, 4)])
    refused = monitor.post(f"/batches/{batch.id}/cancel", data="x", content_type="text/plain")
    assert refused.status_code == 415
    assert batch.status().cancelled == 0
    body = monitor.post(f"/batches/{batch.id}/cancel").get_json()
    assert body["cancelled"] == 2
    assert body["sealed"]
    assert body["finished"]
    assert monitor.get("/batches/999999").status_code == 404
    assert monitor.post("/batches/999999/cancel").status_code == 404
    assert monitor.get(f"/batches/{2**64}").status_code == 404
    assert monitor.get("/batches?limit=0").status_code == 400
    assert monitor.get("/batches?colour=red").status_code == 400


def test_flask_jobq_batch_commands(app: Flask, queue: jobq.DurableQueue) -> None:
    done = _finished_batch(queue)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["jobq", "batch", str(done), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 3
    result = runner.invoke(args=["jobq", "batches"])
    assert result.exit_code == 0
    assert f"batch {done}  finished" in result.stdout
    result = runner.invoke(args=["jobq", "batch", "999"])
    assert result.exit_code != 0
    assert "no batch with id 999" in result.output


def test_the_dashboard_batch_page_shows_counts_links_and_cancels(
    app: Flask, queue: jobq.DurableQueue
) -> None:
    from tests.integration.flask.test_dashboard import form_token, inline_problems, page

    done = _finished_batch(queue)
    client = app.test_client()
    html = page(client, f"/jobq/ui/batches/{done}")
    assert "3 of 3 jobs ended" in html
    assert "on_complete: report" in html
    assert "finished" in html
    assert "newsletter" in html
    (callback,) = queue.get_batch(done).status().callback_job_ids
    assert f'href="/jobq/ui/jobs/{callback}"' in html
    assert not inline_problems(html)
    job_html = page(client, f"/jobq/ui/jobs/{callback - 1}")
    assert f'href="/jobq/ui/batches/{done}"' in job_html
    running = queue.batch(on_complete="report")
    running.enqueue_many("add", [(1, 2), (3, 4)])
    html = page(client, f"/jobq/ui/batches/{running.id}")
    assert "Cancel batch" in html
    assert "open" in html
    answer = client.post(
        f"/jobq/ui/batches/{running.id}", data={"action": "cancel", "csrf_token": form_token(html)}
    )
    assert answer.status_code == 303
    assert running.status().cancelled == 2
    refused = client.post(f"/jobq/ui/batches/{running.id}", data={"action": "cancel"})
    assert refused.status_code == 403
    page(client, "/jobq/ui/batches/999999", status=404)


def test_the_dashboard_lists_batches_newest_first_by_pages(
    app: Flask, queue: jobq.DurableQueue
) -> None:
    from flask_jobq.dashboard.views import BATCHES_PER_PAGE
    from tests.integration.flask.test_dashboard import inline_problems, page

    client = app.test_client()
    assert "No batch yet" in page(client, "/jobq/ui/batches")
    done = _finished_batch(queue)
    made = [queue.batch(on_complete="report").id for _ in range(BATCHES_PER_PAGE)]
    html = page(client, "/jobq/ui/batches")
    assert not inline_problems(html)
    assert 'aria-current="page">Batches<' in html
    assert f'href="/jobq/ui/batches/{made[-1]}"' in html  # the newest first
    assert f'href="/jobq/ui/batches/{done}"' not in html  # on the next page
    assert f'href="/jobq/ui/batches?before={made[0]}"' in html
    older = page(client, f"/jobq/ui/batches?before={made[0]}")
    assert f'data-batch="{done}"' in older
    assert "3 / 3" in older
    assert "finished" in older
    assert "Older →</span>" in older  # the last page
    assert f'data-batch="{made[-1]}"' in page(client, f"/jobq/ui/batches?before={2**64}")
    page(client, "/jobq/ui/batches?before=x", status=400)
    page(client, "/jobq/ui/batches?before=0", status=400)
