"""Reliability on a real Redis server: kill -9 of worker processes (no job lost).

The short version of ``stress/chaos.py`` on the test server (``JOBQ_TEST_REDIS_URL``),
its keys under a prefix of the test's own. The server itself is killed in
tests/integration/test_redis_server_kill.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stress import chaos
from tests.helpers import drop_redis_prefix, redis_test_prefix, require_redis

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> Iterator[str]:
    chosen = redis_test_prefix()
    yield chosen
    drop_redis_prefix(chosen)


@pytest.mark.slow
def test_random_kill_9_of_worker_processes_on_redis_loses_no_job(
    tmp_path: Path, prefix: str
) -> None:
    figures = chaos.run(
        require_redis(),
        tmp_path,
        processes=3,
        threads=4,
        jobs=1500,
        kills=12,
        lease=2.0,
        job_sleep=0.03,
        gap=(0.2, 0.5),
        seed=11,
        timeout=60.0,
        prefix=prefix,
    )
    print("\n" + figures.table())
    assert figures.backend == "redis"
    assert figures.problems == []
    assert figures.kills >= 10, "the jobs were done before the kills"
    # The kills hit running jobs, and those were run again: the checks had material.
    assert figures.duplicated > 0
    assert figures.rescues_measured > 0
    assert figures.lost == figures.never_ran == figures.bad_duplicates == figures.errors == 0
