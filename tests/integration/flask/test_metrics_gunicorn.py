"""A real gunicorn (``--workers 4``, prometheus_client's multiprocess mode) serving
tests/integration/flask/_metrics_app.py on 127.0.0.1: jobs enqueued over HTTP run in
several worker processes, and ``/jobq/metrics`` scraped several times answers the
same sums whichever process answers: the counters of every process add up to the
jobs run, the histograms count one observation per job, the gauges read from the
database agree; without the bearer token the scrape is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import gunicorn_port, started_process, wait_for

prometheus_parser = pytest.importorskip("prometheus_client.parser")

APP = "tests.integration.flask._metrics_app:create_app()"
CONFIG = "tests/integration/flask/_metrics_gunicorn_conf.py"
WORKERS = 4
JOBS = 120
TOKEN = "scrape-token-1"
BOOT_LIMIT = 30.0
RUN_LIMIT = 30.0
MIN_SCRAPES = 10
MAX_SCRAPES = 200  # scrapes go on until two processes have answered

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _request(port: int, method: str, path: str, token: str | None = None) -> tuple[int, str, str]:
    """(status, body, the answering pid)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        response = _DIRECT.open(request, timeout=10)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(), error.headers.get("X-Served-By", "")
    with response:
        return response.status, response.read().decode(), response.headers["X-Served-By"]


@contextlib.contextmanager
def _gunicorn(tmp_path: Path) -> Iterator[int]:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "JOBQ_METRICS_DB": str(tmp_path / "jobq.db"),
        "JOBQ_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    command = [
        *(sys.executable, "-m", "gunicorn", "-c", CONFIG, "--workers", str(WORKERS)),
        *("--bind", "127.0.0.1:0", "--worker-tmp-dir", str(tmp_path), "--no-control-socket"),
        *("--graceful-timeout", "5", APP),
    ]
    with started_process(command, log=log, env=env) as process:
        try:
            yield gunicorn_port(process, log, BOOT_LIMIT)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):  # then it is killed
                process.wait(timeout=15)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in prometheus_parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _gauges(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The gauges read from the database, but live workers: gunicorn's workers register
    one by one as they boot, so that one may still grow between two scrapes."""
    counted = ("_total", "_count", "_sum", "_bucket")
    return {
        key: value
        for key, value in samples.items()
        if not key[0].endswith(counted) and key[0] != "jobq_workers_live"
    }


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gunicorn needs fork")
def test_counters_of_every_process_add_up_to_the_jobs_run_whichever_process_answers(
    tmp_path: Path,
) -> None:
    job = {"task": "noop", "queue": "default"}
    with _gunicorn(tmp_path) as port:
        answers: list[tuple[int, str, str]] = []
        with ThreadPoolExecutor(8) as pool:
            # On a busy machine one process may accept a whole batch: send more (bounded).
            while len({pid for _, _, pid in answers}) < 2 and len(answers) < 4 * JOBS:
                batch = range(len(answers), len(answers) + JOBS)
                answers += pool.map(lambda n: _request(port, "POST", f"/enqueue?n={n}"), batch)
        sent = len(answers)
        assert all(status == 200 for status, _, _ in answers)
        enqueued_by = {pid for _, _, pid in answers}

        def all_counted() -> bool:
            status, text, _ = _request(port, "GET", "/jobq/metrics", TOKEN)
            assert status == 200, text
            return _value(_samples(text), "jobq_jobs_completed_total", **job) == sent

        wait_for(all_counted, f"{sent} jobs completed and counted", RUN_LIMIT, interval=0.05)

        scrapes = [_request(port, "GET", "/jobq/metrics", TOKEN) for _ in range(MIN_SCRAPES)]
        while len({pid for _, _, pid in scrapes}) < 2 and len(scrapes) < MAX_SCRAPES:
            scrapes.append(_request(port, "GET", "/jobq/metrics", TOKEN))
        status, stats_text, _ = _request(port, "GET", "/jobq/stats")
        refused = [
            _request(port, "GET", "/jobq/metrics"),
            _request(port, "GET", "/jobq/metrics", "wrong-token"),
        ]

    assert len(enqueued_by) >= 2, "the enqueue requests were all served by one process"
    answered_by = {pid for _, _, pid in scrapes}
    assert len(answered_by) >= 2, "every scrape was answered by the same process"
    first = _samples(scrapes[0][1])
    for scrape_status, text, _ in scrapes:
        assert scrape_status == 200
        samples = _samples(text)
        for name in (
            "jobq_jobs_enqueued_total",
            "jobq_jobs_started_total",
            "jobq_jobs_completed_total",
            "jobq_job_run_seconds_count",
            "jobq_job_wait_seconds_count",
        ):
            assert _value(samples, name, **job) == sent, name
        assert _value(samples, "jobq_jobs_failed_total", **job) == 0
        assert _value(samples, "jobq_job_run_seconds_bucket", le="+Inf", **job) == sent
        assert _value(samples, "jobq_jobs", queue="default", status="completed") == sent
        assert _value(samples, "jobq_jobs", queue="default", status="pending") == 0
        assert _value(samples, "jobq_database_up") == 1
        assert 1 <= _value(samples, "jobq_workers_live") <= 4
        assert _gauges(samples) == _gauges(first)
    assert status == 200
    assert json.loads(stats_text)["queues"]["default"]["counts"]["completed"] == sent
    assert [code for code, _, _ in refused] == [403, 403]
