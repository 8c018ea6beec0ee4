"""Call a rate-limited API through jobq and get no 429s; a plain thread pool gets many.

The fake API (see fake_api.py) serves at most LIMIT requests in any PER seconds
and answers 429 past that. The same items go through three executors, each
against a fresh server so that one run's requests do not count against the next:

1. ``concurrent.futures.ThreadPoolExecutor(3)``: no rate limit, so most calls get 429.
2. ``jobq.BoundedExecutor(3, rate=LIMIT, per=PER, strict=True)``: the provider's
   numbers exactly. Starts are never closer than the limit allows, yet a few
   calls may still get 429: each request reaches the server a little after it
   starts, and those lags vary, so arrivals can bunch closer than the starts.
3. ``jobq.executor("fake-api", max_workers=3, rate=LIMIT, per=PER + MARGIN,
   strict=True)``: the window padded by a margin larger than that jitter. No 429s.

Run it from the repository's root with ``python3 dev.py run examples/rate_limited_client.py``
(which sets up ``.venv`` first); it takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fake_api import start_fake_api

import jobq

LIMIT = 5  # requests the fake API serves in any window of PER seconds
PER = 0.5
# Padding for the client's window. Lags between a call starting and the server
# counting it vary (about 1-2 ms on localhost, far more over the internet); a
# window that matches the provider's exactly can then still see 429s.
MARGIN = 0.1
LATENCY = 0.02  # seconds the fake API takes per served request
EXECUTOR_NAME = "fake-api"


@dataclass(frozen=True)
class Reply:
    """One call's outcome: the HTTP status and the decoded JSON body."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class RunResult:
    """What one run of all the items through one executor came to."""

    label: str
    calls: int
    ok: int
    refused_429: int
    elapsed: float


def fetch(base_url: str, item: str, timeout: float = 5.0) -> Reply:
    """GET ``/enrich?item=...``; a 4xx/5xx answer is returned as a Reply, not raised."""
    url = f"{base_url}/enrich?item={quote(item)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return Reply(response.status, json.load(response))
    except urllib.error.HTTPError as error:
        with error:  # an HTTPError holds the open response; close it
            return Reply(error.code, json.load(error))


def run(label: str, executor: Executor, base_url: str, items: list[str]) -> RunResult:
    """Fetch every item through ``executor`` and count the outcomes."""
    started = time.monotonic()
    futures = [executor.submit(fetch, base_url, item) for item in items]
    replies = [future.result(timeout=30) for future in futures]
    return RunResult(
        label=label,
        calls=len(replies),
        ok=sum(reply.status == 200 for reply in replies),
        refused_429=sum(reply.status == 429 for reply in replies),
        elapsed=time.monotonic() - started,
    )


def run_plain(items: list[str]) -> RunResult:
    """All items through a ThreadPoolExecutor of 3, against a fresh fake API."""
    with start_fake_api(LIMIT, PER, LATENCY) as api, ThreadPoolExecutor(3) as pool:
        return run("ThreadPoolExecutor(3), no rate limit", pool, api.url, items)


def run_exact(items: list[str]) -> RunResult:
    """All items through jobq with exactly the provider's limit, against a fresh fake API."""
    with (
        start_fake_api(LIMIT, PER, LATENCY) as api,
        jobq.BoundedExecutor(3, rate=LIMIT, per=PER, strict=True) as pool,
    ):
        return run(f"jobq, strict {LIMIT} per {PER:g} s (exact)", pool, api.url, items)


def run_jobq(items: list[str]) -> RunResult:
    """All items through the named jobq executor with a padded window, against a fresh fake API.

    The script owns the named executor, so it shuts it down when done; an app
    would configure it at start-up and keep it for the life of the process.
    """
    pool = jobq.executor(EXECUTOR_NAME, max_workers=3, rate=LIMIT, per=PER + MARGIN, strict=True)
    try:
        with start_fake_api(LIMIT, PER, LATENCY) as api:
            label = f"jobq, strict {LIMIT} per {PER + MARGIN:g} s (padded)"
            return run(label, pool, api.url, items)
    finally:
        pool.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare a thread pool with jobq's rate limit.")
    parser.add_argument("--items", type=int, default=20, help="items to fetch (default 20)")
    args = parser.parse_args(argv)
    items = [f"item-{number}" for number in range(1, args.items + 1)]

    print(f"fake API limit: {LIMIT} requests per {PER:g} s; {len(items)} items, 3 at a time\n")
    print(f"{'executor':<40} {'calls':>5} {'ok':>4} {'429s':>5} {'elapsed':>8}")
    results = []
    for runner in (run_plain, run_exact, run_jobq):
        result = runner(items)
        results.append(result)
        print(
            f"{result.label:<40} {result.calls:>5} {result.ok:>4} "
            f"{result.refused_429:>5} {result.elapsed:>7.2f}s",
            flush=True,
        )
    padded = results[-1]
    print(
        f"\nWith a {MARGIN:g} s margin on the window, jobq made {padded.calls} calls and got "
        f"{padded.refused_429} 429s.\nThe exact setting can still get a few: requests reach "
        "the server a variable time after they start."
    )
    return 0 if padded.refused_429 == 0 and padded.ok == len(items) else 1


if __name__ == "__main__":
    raise SystemExit(main())
