"""PostgreSQL claims read each queue's pending jobs off jobq_jobs_claim in order
and stop after the limit: the work of a claim does not grow with the backlog.
Checked on the plan PostgreSQL runs (EXPLAIN ANALYZE, rolled back): no step
reads more rows than the queues asked for times the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from jobq.storage.base import NewJob
from tests.contract._support import T0
from tests.helpers import drop_postgres_schema, postgres_schema_url

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")

from jobq.storage.postgres import PostgresStorage, sql  # noqa: E402

BACKLOG = 3000
LIMIT = 10


@pytest.fixture
def url() -> Iterator[str]:
    made = postgres_schema_url()
    with PostgresStorage(made, clock="caller") as storage:
        for queue in ("a", "b", "c"):
            storage.enqueue_payloads(NewJob("t", "[]", queue=queue), ["[]"] * BACKLOG, now=T0)
            storage.enqueue_payloads(  # scheduled for later: still in the index
                NewJob("t", "[]", queue=queue, run_at=T0 + 60), ["[]"] * 100, now=T0
            )
    with psycopg.connect(made, autocommit=True) as conn:
        conn.execute("ANALYZE jobq_jobs")
    yield made
    drop_postgres_schema(made)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _plan(url: str, statement: str, queues: list[str]) -> list[dict[str, Any]]:
    params = {
        "queues": queues,
        "now": T0,
        "limit": LIMIT,
        "owner": "w",
        "lease": 30.0,
        "blocked": [],
        "group_names": [],
        "group_keys": [],
    }
    with psycopg.connect(url) as conn:  # not autocommit: rolled back, nothing claimed
        [(found,)] = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params).fetchall()
        conn.rollback()
    plan = found[0] if isinstance(found, list) else json.loads(found)[0]
    return list(_nodes(plan["Plan"]))


@pytest.mark.parametrize("queues", [["a"], ["a", "b", "c"]])
@pytest.mark.parametrize("statement", ["CLAIM", "CANDIDATES", "HAS_RUNNABLE"])
def test_no_step_of_a_claim_reads_the_whole_backlog(
    url: str, statement: str, queues: list[str]
) -> None:
    nodes = _plan(url, getattr(sql, statement), queues)
    most = max(node["Actual Rows"] * node["Actual Loops"] for node in nodes)
    assert most <= len(queues) * LIMIT, [
        (n["Node Type"], n["Actual Rows"], n["Actual Loops"]) for n in nodes
    ]
    assert not any(node["Node Type"] == "Seq Scan" for node in nodes)
