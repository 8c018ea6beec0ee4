"""jobq's demo: a Flask app that fans requests out to a rate-limited API without a single 429.

It starts the fake API of fake_api.py (at most API_LIMIT requests in any API_PER
seconds, 429 past that) in a background thread, and configures one process-wide
jobq executor for it: 3 calls at a time, a strict sliding-window rate limit.
Every request thread submits to that same executor by name, so the limit holds
for the whole process, however many requests arrive at once.

It shows both tiers. ``POST /enrich`` waits for in-memory tasks during the
request (the BoundedExecutor). ``POST /jobs`` stores durable jobs in a SQLite
file under the app's instance folder and returns at once; worker threads
started with the app run them, retrying a call the API refused, and
``GET /jobs/<id>`` shows how each went. Stop the app while jobs wait and start
it again: they are still there and run. This app uses the core alone and starts
its workers by hand (``queue.start_workers``); the Flask extension
``flask_jobq.JobQ`` does that, and mounts a monitor, for you: see
``examples/newsletter/app.py``.

Run it from the repository's root (``dev.py run`` sets up ``.venv`` first)::

    python3 dev.py run examples/demo_app.py            # serve on http://127.0.0.1:5000
    python3 dev.py run examples/demo_app.py --check    # exercise the endpoints, 0 if all is well

Endpoints: ``GET /``, ``POST /enrich`` and ``POST /jobs`` with
``{"items": ["apple", ...]}``, ``GET /jobs/<id>``, ``GET /jobs/stats``,
``GET /executor``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from concurrent.futures import wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fake_api import FakeApi, start_fake_api
from flask import Flask, Response, jsonify, request
from rate_limited_client import fetch
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

import jobq

EXECUTOR_NAME = "fake-api"
API_LIMIT = 5  # the fake API serves at most this many requests...
API_PER = 1.0  # ...in any window of this many seconds
API_LATENCY = 0.05
# The executor's window is padded: a request reaches the API a variable time
# after it starts, so matching the provider's window exactly can still draw 429s.
MARGIN = 0.1
MAX_WORKERS = 3
MAX_ITEMS = 30
MAX_ITEM_LENGTH = 200
CALL_TIMEOUT = 5.0  # per call, counted from its start (jobq's task timeout and urllib's)
WAIT_TIMEOUT = 15.0  # the longest POST /enrich waits for all of its calls
EXAMPLE_ITEMS = ["apple", "banana", "cherry", "damson", "elderberry", "fig", "grape", "kiwi"]


@dataclass
class Demo:
    """What the app runs besides Flask: the fake API, its named executor, the durable
    queue and the queue's worker pool."""

    api: FakeApi
    executor: jobq.BoundedExecutor
    queue: jobq.DurableQueue
    pool: jobq.WorkerPool

    def close(self) -> None:
        """Stop the workers (unstarted jobs stay stored), the executor and the fake API."""
        self.pool.stop(timeout=CALL_TIMEOUT)
        self.queue.close()
        self.executor.shutdown(cancel_futures=True)
        self.api.stop()


def job_as_dict(job: jobq.Job) -> dict[str, Any]:
    """What ``GET /jobs/<id>`` shows of a job."""
    return {
        "id": job.id,
        "task": job.name,
        "args": job.decoded_payload()["args"],
        "status": job.status.value,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "result": job.decoded_result(),
        "error": None if job.error is None else f"{job.error.type}: {job.error.message}",
    }


def make_queue(app: Flask, api: FakeApi) -> jobq.DurableQueue:
    """The demo's durable queue, in the instance folder, with its one task."""
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    queue = jobq.DurableQueue(Path(app.instance_path) / "demo-jobs.db")

    @queue.task("enrich_item", max_attempts=5, backoff=jobq.backoff.exponential(base=0.5, cap=5))
    def enrich_item(item: str) -> dict[str, Any]:
        # Durable jobs share the process-wide rate limit with request-time calls.
        reply = jobq.executor(EXECUTOR_NAME).submit(fetch, api.url, item, CALL_TIMEOUT).result()
        if reply.status != 200:
            raise RuntimeError(f"the API answered {reply.status}")  # retried with backoff
        return {"item": item, "body": reply.body}

    return queue


def demo_of(app: Flask) -> Demo:
    """The :class:`Demo` that :func:`create_app` attached to ``app``."""
    demo: Demo = app.extensions["jobq_demo"]
    return demo


def create_app(
    *,
    limit: int = API_LIMIT,
    per: float = API_PER,
    latency: float = API_LATENCY,
    instance_path: str | None = None,
) -> Flask:
    """Build the demo app, starting a fake API that allows ``limit`` requests per ``per`` s.

    Call ``demo_of(app).close()`` when done with the app: Flask has no shutdown
    hook, and the fake API's thread and the executor's threads outlive requests.
    """
    app = Flask(__name__, instance_path=instance_path)
    api = start_fake_api(limit, per, latency)
    try:
        executor = jobq.executor(
            EXECUTOR_NAME, max_workers=MAX_WORKERS, rate=limit, per=per + MARGIN, strict=True
        )
        queue = make_queue(app, api)
    except BaseException:
        api.stop()
        raise
    pool = queue.start_workers(concurrency=MAX_WORKERS)
    app.extensions["jobq_demo"] = Demo(api, executor, queue, pool)

    @app.errorhandler(HTTPException)
    def json_error(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=error.name, message=error.description), error.code or 500

    @app.get("/")
    def index() -> dict[str, Any]:
        return {
            "demo": "jobq in-memory tier: fan calls out to a rate-limited API, get no 429s",
            "how": (
                f"POST /enrich calls the fake API once per item through the process-wide "
                f"executor jobq.executor({EXECUTOR_NAME!r}): {MAX_WORKERS} at a time, at most "
                f"{limit} starts in any {per + MARGIN:g} s (the API allows {limit} per {per:g} s; "
                f"the margin absorbs network jitter). Concurrent requests share the limit."
            ),
            "durable": (
                "POST /jobs stores one durable job per item in a SQLite file and returns at "
                "once; worker threads run them (through the same rate limit), retrying "
                "refused calls. Jobs survive a restart of the app."
            ),
            "endpoints": {
                "GET /": "this description",
                "POST /enrich": f'JSON {{"items": [...]}}, up to {MAX_ITEMS} strings',
                "POST /jobs": "the same body; answers 202 with the job ids",
                "GET /jobs/<id>": "one job: status, attempts, result or last error",
                "GET /jobs/stats": "counts of durable jobs per status",
                "GET /executor": "the named executor's running and waiting tasks and limits",
            },
            "fake_api": {"url": api.url, "limit": limit, "per": per},
        }

    @app.post("/enrich")
    def enrich() -> tuple[dict[str, Any], int]:
        items = parse_items()
        # Look the executor up by name, as any request thread or module would.
        calls = jobq.executor(EXECUTOR_NAME).options(timeout=CALL_TIMEOUT)
        started = time.monotonic()
        futures = [calls.submit(fetch, api.url, item, CALL_TIMEOUT) for item in items]
        done, not_done = wait(futures, timeout=WAIT_TIMEOUT)
        for future in not_done:
            future.cancel()  # still waiting to start: drop it; running ones finish alone
        elapsed = time.monotonic() - started

        results: list[dict[str, Any]] = []
        for item, future in zip(items, futures, strict=True):
            if future not in done:
                results.append({"item": item, "error": f"not done within {WAIT_TIMEOUT:g} s"})
            elif (error := future.exception()) is not None:
                results.append({"item": item, "error": f"{type(error).__name__}: {error}"})
            else:
                reply = future.result()
                results.append({"item": item, "status": reply.status, "body": reply.body})
        statuses = [result.get("status") for result in results]
        body = {
            "results": results,
            "calls": sum(status is not None for status in statuses),
            "ok": statuses.count(200),
            "rate_limited_429": statuses.count(429),
            "failed": sum(status is None for status in statuses),
            "elapsed_seconds": round(elapsed, 3),
            "fake_api_totals": asdict(api.stats()),
        }
        return body, 200 if not not_done else 504

    @app.post("/jobs")
    def enqueue_jobs() -> tuple[dict[str, Any], int]:
        ids = demo_of(app).queue.enqueue_many("enrich_item", [(item,) for item in parse_items()])
        return {"job_ids": ids, "see": [f"/jobs/{job_id}" for job_id in ids]}, 202

    @app.get("/jobs/<int:job_id>")
    def show_job(job_id: int) -> dict[str, Any]:
        try:
            return job_as_dict(demo_of(app).queue.get(job_id))
        except jobq.JobNotFound as error:
            raise NotFound(str(error)) from None

    @app.get("/jobs/stats")
    def job_stats() -> dict[str, Any]:
        stats = demo_of(app).queue.stats()
        return {
            name: {status.value: count for status, count in queue_stats.counts.items()}
            for name, queue_stats in stats.queues.items()
        }

    @app.get("/executor")
    def executor_state() -> dict[str, Any]:
        pool = jobq.executor(EXECUTOR_NAME)
        limiter = pool.limiter
        rate_limit: dict[str, Any] | None = None
        # The executor does not expose its rate settings; read them off its limiter.
        if isinstance(limiter, jobq.SlidingWindowLimiter):
            rate_limit = {"strict": True, "rate": limiter.limit, "per": limiter.per}
        elif isinstance(limiter, jobq.TokenBucket):
            rate_limit = {"strict": False, "rate": limiter.rate, "per": limiter.per}
        return {
            "name": EXECUTOR_NAME,
            "running": pool.running,
            "waiting": pool.waiting,
            "max_workers": pool.max_workers,
            "paused": pool.paused,
            "rate_limit": rate_limit,
            "fake_api": {"limit": limit, "per": per, **asdict(api.stats())},
        }

    return app


def parse_items() -> list[str]:
    """The request's ``items``, or a BadRequest that says what is wrong with the body."""
    example = '{"items": ["apple", "banana"]}'
    if not request.get_data():
        raise BadRequest(f"missing JSON body; send one like {example}")
    if not request.is_json:
        raise BadRequest("send the body with Content-Type: application/json")
    try:
        body = json.loads(request.get_data())
    except ValueError as error:
        raise BadRequest(f"malformed JSON body ({error}); send one like {example}") from None
    if not isinstance(body, dict) or "items" not in body:
        raise BadRequest(f"expected a JSON object with an 'items' list, like {example}")
    items = body["items"]
    if not isinstance(items, list):
        raise BadRequest(f"'items' must be a list, got {type(items).__name__}")
    if not 1 <= len(items) <= MAX_ITEMS:
        raise BadRequest(f"'items' must hold 1 to {MAX_ITEMS} strings, got {len(items)}")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not 0 < len(item) <= MAX_ITEM_LENGTH:
            raise BadRequest(
                f"items[{index}] must be a non-empty string of at most {MAX_ITEM_LENGTH} "
                f"characters, got {item!r:.50}"
            )
    return items


def check() -> bool:
    """Exercise every endpoint with Flask's test client against a real fake API server."""
    scratch = tempfile.TemporaryDirectory(prefix="jobq-demo-check-")
    app = create_app(instance_path=scratch.name)
    client = app.test_client()
    failures: list[str] = []

    def expect(name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{f': {detail}' if detail else ''}")
        if not ok:
            failures.append(name)

    try:
        index = client.get("/")
        expect(
            "GET / describes the endpoints",
            index.status_code == 200 and "POST /enrich" in index.get_json()["endpoints"],
        )

        items = [f"item-{number}" for number in range(1, 13)]
        print(
            f"POST /enrich with {len(items)} items (the fake API allows "
            f"{API_LIMIT} per {API_PER:g} s)..."
        )
        reply = client.post("/enrich", json={"items": items})
        body = reply.get_json()
        summary = {
            key: body.get(key)
            for key in ("calls", "ok", "rate_limited_429", "failed", "elapsed_seconds")
        }
        print(f"  {json.dumps(summary)}")
        print(f"  first result: {json.dumps(body['results'][0]) if body.get('results') else None}")
        expect("POST /enrich answers 200", reply.status_code == 200, str(reply.status_code))
        expect("every item was fetched", body.get("ok") == len(items))
        expect(
            "no 429 from the fake API",
            body.get("rate_limited_429") == 0 and demo_of(app).api.stats().refused_429 == 0,
            json.dumps(body["fake_api_totals"]),
        )
        # 12 calls at 5 per window cannot all start within the first two windows.
        min_elapsed = (math.ceil(len(items) / API_LIMIT) - 1) * API_PER
        expect(
            "the calls were spread over the windows",
            body["elapsed_seconds"] >= min_elapsed,
            f"{body['elapsed_seconds']} s >= {min_elapsed:g} s",
        )

        for name, kwargs in {
            "malformed JSON": {"data": "{items: [", "content_type": "application/json"},
            "no body": {},
            "items not a list": {"json": {"items": "apple"}},
        }.items():
            bad = client.post("/enrich", **kwargs)
            message = (bad.get_json() or {}).get("message", "")
            expect(
                f"POST /enrich with {name} answers 400",
                bad.status_code == 400 and bool(message),
                f"{bad.status_code} {message}",
            )

        jobs = client.post("/jobs", json={"items": ["kiwi", "lime", "mango"]})
        job_ids = (jobs.get_json() or {}).get("job_ids", [])
        expect(
            "POST /jobs answers 202 with 3 job ids",
            jobs.status_code == 202 and len(job_ids) == 3,
            str(jobs.get_json()),
        )
        deadline = time.monotonic() + WAIT_TIMEOUT
        shown: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            shown = [client.get(f"/jobs/{job_id}").get_json() for job_id in job_ids]
            if all(job["status"] == "completed" for job in shown):
                break
            time.sleep(0.05)
        print(f"  durable jobs: {json.dumps([(j['id'], j['status']) for j in shown])}")
        expect(
            "the workers completed every durable job",
            bool(shown) and all(job["status"] == "completed" for job in shown),
        )
        missing = client.get("/jobs/999999")
        expect("GET /jobs/<unknown id> answers 404", missing.status_code == 404)

        # A task's future resolves a moment before the executor stops counting it as
        # running, so wait for the executor itself before expecting running == 0.
        demo_of(app).executor.wait_idle(timeout=5)
        state = client.get("/executor")
        print(f"  GET /executor: {json.dumps(state.get_json())}")
        expect(
            "GET /executor shows an idle executor with its limits",
            state.status_code == 200
            and state.get_json()["running"] == 0
            and state.get_json()["waiting"] == 0
            and state.get_json()["rate_limit"]["rate"] == API_LIMIT,
        )
    finally:
        demo_of(app).close()
        scratch.cleanup()
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return not failures


def main() -> int:
    parser = argparse.ArgumentParser(description="jobq's demo Flask app.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exercise the endpoints with Flask's test client, then exit",
    )
    args = parser.parse_args()
    if args.check:
        return 0 if check() else 1

    app = create_app()
    base = f"http://{args.host}:{args.port}"
    payload = json.dumps({"items": EXAMPLE_ITEMS})
    print(f"jobq demo on {base} (fake API on {demo_of(app).api.url}). Try:\n")
    print(f"  curl -s {base}/")
    print(f"  curl -s -X POST {base}/enrich -H 'Content-Type: application/json' -d '{payload}'")
    print(f"  curl -s -X POST {base}/jobs -H 'Content-Type: application/json' -d '{payload}'")
    print(f"  curl -s {base}/jobs/1")
    print(f"  curl -s {base}/executor\n")
    try:
        # No reloader: it would run this module twice, starting two fake APIs.
        app.run(host=args.host, port=args.port, use_reloader=False)
    finally:
        demo_of(app).close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
