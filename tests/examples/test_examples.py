"""The examples work as their docs say: the fake API limits, jobq keeps under its limit.

Everything runs for real against the fake API on 127.0.0.1: no mocks.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

from tests.helpers import ROOT, wait_for

EXAMPLES = ROOT / "examples"
SUBPROCESS_TIMEOUT = 60.0


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the example scripts importable, as they are when run from examples/."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


def get(url: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """GET ``url``: status, headers and JSON body, for error statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.load(error)


@pytest.mark.usefixtures("examples")
def test_fake_api_answers_429_past_its_limit() -> None:
    fake_api = load("fake_api")
    with fake_api.start_fake_api(limit=5, per=1.0, latency=0.0) as api:
        replies = [get(f"{api.url}/enrich?item=apple") for _ in range(8)]
        statuses = [status for status, _, _ in replies]
        assert statuses == [200] * 5 + [429] * 3
        assert replies[0][2] == {"item": "apple", "upper": "APPLE", "length": 5}
        _, headers, body = replies[-1]
        assert "rate limit exceeded" in body["error"]
        assert int(headers["Retry-After"]) >= 1
        assert api.stats() == fake_api.FakeApiStats(served=5, refused_429=3)
        assert get(f"{api.url}/stats")[2] == {"served": 5, "refused_429": 3}

        time.sleep(api.per)  # the window slides: the first requests have aged out
        assert get(f"{api.url}/enrich?item=pear")[0] == 200


@pytest.mark.usefixtures("examples")
def test_plain_thread_pool_gets_429s() -> None:
    client = load("rate_limited_client")
    result = client.run_plain([f"item-{n}" for n in range(12)])
    assert result.calls == 12
    assert result.refused_429 > 0


@pytest.mark.usefixtures("examples")
def test_jobq_client_gets_no_429s() -> None:
    client = load("rate_limited_client")
    items = [f"item-{n}" for n in range(12)]
    result = client.run_jobq(items)
    assert (result.calls, result.ok, result.refused_429) == (12, 12, 0)
    # 12 starts at 5 per window need three windows: the limit really held them back.
    assert result.elapsed >= 2 * client.PER


def test_rate_limited_client_script_runs() -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "rate_limited_client.py"), "--items", "10"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "jobq made 10 calls and got 0 429s" in completed.stdout


def test_demo_check_exits_zero() -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_app.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "all checks passed" in completed.stdout


@pytest.fixture
def demo_app(examples: None, tmp_path: Path) -> Iterator[Flask]:
    demo = load("demo_app")
    app: Flask = demo.create_app(limit=5, per=0.5, latency=0.01, instance_path=str(tmp_path))
    yield app
    demo.demo_of(app).close()


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"data": "{items: [", "content_type": "application/json"}, "malformed JSON"),
        ({}, "missing JSON body"),
        ({"data": '{"items": ["a"]}'}, "Content-Type: application/json"),
        ({"json": ["apple"]}, "'items' list"),
        ({"json": {"items": "apple"}}, "'items' must be a list"),
        ({"json": {"items": []}}, "1 to 30"),
        ({"json": {"items": ["apple", 3]}}, "items[1] must be a non-empty string"),
    ],
)
def test_enrich_rejects_a_bad_body_with_a_json_400(
    demo_app: Flask, request_kwargs: dict[str, Any], message: str
) -> None:
    response = demo_app.test_client().post("/enrich", **request_kwargs)
    assert response.status_code == 400
    assert response.is_json
    assert message in response.get_json()["message"]


def test_enrich_fetches_items_without_429s(demo_app: Flask) -> None:
    client = demo_app.test_client()
    response = client.post("/enrich", json={"items": ["apple", "pear", "plum"]})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["calls"], body["ok"], body["rate_limited_429"]) == (3, 3, 0)
    assert [result["body"]["upper"] for result in body["results"]] == ["APPLE", "PEAR", "PLUM"]

    load("demo_app").demo_of(demo_app).executor.wait_idle(timeout=5)  # see demo_app.check()
    state = client.get("/executor").get_json()
    assert (state["running"], state["waiting"], state["max_workers"]) == (0, 0, 3)
    assert state["rate_limit"]["rate"] == 5


def test_durable_jobs_survive_a_restart_of_the_app(examples: None, tmp_path: Path) -> None:
    demo = load("demo_app")
    first: Flask = demo.create_app(instance_path=str(tmp_path))
    demo.demo_of(first).pool.stop()  # a server that stops before the jobs run
    reply = first.test_client().post("/jobs", json={"items": ["plum", "pear"]})
    assert reply.status_code == 202
    ids = reply.get_json()["job_ids"]
    demo.demo_of(first).close()

    second: Flask = demo.create_app(instance_path=str(tmp_path))
    try:
        client = second.test_client()
        statuses: list[str] = []

        def completed() -> bool:
            statuses[:] = [client.get(f"/jobs/{job_id}").get_json()["status"] for job_id in ids]
            return statuses == ["completed", "completed"]

        wait_for(completed, "both jobs completed", 15, interval=0.05)
        assert statuses == ["completed", "completed"]
        assert client.get(f"/jobs/{ids[0]}").get_json()["result"]["item"] == "plum"
    finally:
        demo.demo_of(second).close()
