"""The tutorial's apps (examples/tutorial/) behave as docs/tutorial.md says, against real servers.

A real SMTP server (aiosmtpd on 127.0.0.1, answering DATA after SMTP_DELAY
seconds, as a distant provider does), the fake partner API of
examples/fake_api.py (5 requests a second, 429 past that) and a real
12-megapixel JPEG. Each step's claim is checked: step 1 waits for all of it and
meets 429s; step 2 meets none and ends sooner; step 3 answers before the
thumbnails exist; step 4 answers 202 before the email is sent, and the email
arrives once although the server refused the first attempt with 451.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

import jobq
from flask_jobq import JobQState
from tests.helpers import BOUNDED_WAIT, ROOT, wait_for
from tests.integration.handlers._smtp import SmtpServer

EXAMPLE = ROOT / "examples" / "tutorial"
PAGE = ROOT / "docs" / "tutorial.md"
STEPS = ("step1_blocking", "step2_fan_out", "step3_thumbnails", "step4_durable")
SMTP_DELAY = 1.0  # seconds the SMTP server takes to accept a message
ITEMS = [f"item-{number}" for number in range(10)]
API_LATENCY = 0.1  # seconds the fake partner API takes per answer


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The step modules, imported as `flask --app stepN_...` would from examples/tutorial/."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    return {name: importlib.import_module(name) for name in STEPS}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    plain_data = server.handler.handle_DATA

    async def slow_data(*args: Any) -> str:
        await asyncio.sleep(SMTP_DELAY)
        return await plain_data(*args)

    server.handler.handle_DATA = slow_data  # type: ignore[method-assign,assignment]
    yield server
    server.stop()


@pytest.fixture
def partner(steps: dict[str, ModuleType]) -> Iterator[Any]:
    """A fresh fake partner API: 5 requests in any second, 429 past that."""
    fake_api = importlib.import_module("fake_api")
    with fake_api.start_fake_api(limit=5, per=1.0, latency=API_LATENCY) as api:
        yield api


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 4000 x 3000 JPEG, as a phone takes."""
    path = tmp_path / "photo.jpg"
    Image.effect_noise((4000, 3000), 64).convert("RGB").save(path)
    return path


@pytest.fixture
def make_app(
    steps: dict[str, ModuleType], smtp: SmtpServer, partner: Any, tmp_path: Path
) -> Iterator[Callable[..., Flask]]:
    """``make_app("step1_blocking", **config)``: that step's app on the real servers."""
    made: list[tuple[ModuleType, Flask]] = []

    def make(step: str, **config: Any) -> Flask:
        module = steps[step]
        app: Flask = module.create_app(
            {
                "SMTP": {"host": smtp.host, "port": smtp.port, "security": "none"},
                "PARTNER_API_URL": partner.url,
                "AVATAR_FOLDER": str(tmp_path / f"avatars-{step}"),
                "JOBQ_DATABASE": str(tmp_path / f"jobs-{step}.db"),
                **config,
            }
        )
        made.append((module, app))
        return app

    yield make
    for module, app in made:
        if hasattr(module, "jobq_ext"):
            module.jobq_ext.close(app)


def timed(client: FlaskClient, method: str, url: str, **kwargs: Any) -> tuple[TestResponse, float]:
    started = time.perf_counter()
    response = client.open(url, method=method, **kwargs)
    seconds = time.perf_counter() - started
    # The test client spools a large upload to a temporary file it does not close.
    response.request.input_stream.close()
    return response, seconds


def upload(client: FlaskClient, photo: Path) -> tuple[TestResponse, float]:
    with photo.open("rb") as picture:
        return timed(client, "POST", "/users/42/avatar", data={"picture": picture})


def test_step1_waits_for_the_email_the_thumbnails_and_every_api_call(
    make_app: Callable[..., Flask], smtp: SmtpServer, partner: Any, photo: Path, tmp_path: Path
) -> None:
    client = make_app("step1_blocking").test_client()

    response, seconds = timed(client, "POST", "/signup", data={"email": "ada@example.com"})
    assert response.status_code == 201
    assert seconds >= SMTP_DELAY
    assert [message.rcpt_tos for message in smtp.received] == [("ada@example.com",)]

    response, _ = upload(client, photo)
    assert response.status_code == 201
    thumbnails = tmp_path / "avatars-step1_blocking"
    assert all((thumbnails / name).is_file() for name in response.get_json()["thumbnails"])

    response, seconds = timed(client, "POST", "/enrich", json={"items": ITEMS})
    assert [item["item"] for item in response.get_json()["items"]] == ITEMS
    assert partner.stats().refused_429 >= 1  # one at a time, and still over the limit
    assert seconds >= 1.0


def test_step2_calls_the_api_three_at_a_time_without_429_and_sooner(
    make_app: Callable[..., Flask], steps: dict[str, ModuleType]
) -> None:
    fake_api = importlib.import_module("fake_api")
    elapsed = {}
    for step in ("step1_blocking", "step2_fan_out"):
        # A fresh partner for each, so one step's calls do not count against the other's.
        with fake_api.start_fake_api(limit=5, per=1.0, latency=API_LATENCY) as api:
            client = make_app(step, PARTNER_API_URL=api.url).test_client()
            response, elapsed[step] = timed(client, "POST", "/enrich", json={"items": ITEMS})
            assert [item["item"] for item in response.get_json()["items"]] == ITEMS
            refused = api.stats().refused_429
        if step == "step2_fan_out":
            assert refused == 0
    assert elapsed["step2_fan_out"] < elapsed["step1_blocking"]


def test_step3_answers_before_the_thumbnails_are_made(
    make_app: Callable[..., Flask], photo: Path, tmp_path: Path
) -> None:
    client = make_app("step3_thumbnails").test_client()
    thumbnails = jobq.executor("thumbnails", max_workers=3)
    thumbnails.pause()  # hold the background work, to see the answer come first

    response, _ = upload(client, photo)

    assert response.status_code == 202
    names = response.get_json()["thumbnails"]
    folder = tmp_path / "avatars-step3_thumbnails"
    assert not any((folder / name).exists() for name in names)
    thumbnails.resume()
    assert thumbnails.wait_idle(BOUNDED_WAIT)
    assert all((folder / name).is_file() for name in names)


def test_step4_answers_202_at_once_and_the_email_arrives_once_after_a_451(
    make_app: Callable[..., Flask], smtp: SmtpServer, photo: Path
) -> None:
    smtp.refuse("ada@example.com", "451 4.7.1 try again later")
    app = make_app(
        "step4_durable",
        JOBQ_EMAIL={
            "host": smtp.host,
            "port": smtp.port,
            "default_sender": "Example <welcome@example.com>",
            "retry_delay": 0.05,
        },
    )
    client = app.test_client()

    response, seconds = timed(client, "POST", "/signup", data={"email": "ada@example.com"})

    assert response.status_code == 202
    assert seconds < SMTP_DELAY  # the request did not wait for the SMTP server
    assert smtp.received == []
    job_id = response.get_json()["job"]
    state: JobQState = app.extensions["jobq"]
    state.start_workers()  # as a serving process does (the test client serves none)

    def completed() -> bool:
        return state.queue.get(job_id).status == jobq.JobStatus.COMPLETED

    wait_for(completed, "the welcome email was sent", BOUNDED_WAIT, interval=0.02)
    assert state.queue.get(job_id).attempts == 2  # 451 first, then accepted
    assert [message.rcpt_tos for message in smtp.received] == [("ada@example.com",)]

    stats = client.get("/jobq/stats").get_json()
    assert stats["totals"]["completed"] == 1
    assert client.get("/jobq/jobs?status=failed").get_json()["jobs"] == []


def test_step6_tests_pass_in_a_copy_of_the_folder(tmp_path: Path) -> None:
    for name in ("step4_durable.py", "test_signup.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_signup.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 passed" in completed.stdout
    assert not (tmp_path / "instance").exists()  # a testing app leaves the instance folder alone


def test_the_page_shows_the_code_of_the_example_files() -> None:
    """Every block of the page headed ``# from examples/tutorial/<file>`` is in that file,
    each part between ``# ...`` lines word for word."""
    shown = r"```python\n# from (examples/tutorial/\S+)\n(.*?)```"
    blocks = re.findall(shown, PAGE.read_text(), re.S)
    assert len(blocks) >= 6
    for path, code in blocks:
        source = (ROOT / path).read_text()
        for part in code.split("# ...\n"):
            assert part.strip() in source, f"docs/tutorial.md shows code not in {path}:\n{part}"
