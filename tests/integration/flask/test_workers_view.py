"""The live worker pools seen from Flask: ``GET /jobq/workers`` (checked against the
OpenAPI description by ``Monitor``) and ``flask jobq workers``."""

from __future__ import annotations

import json
import os

from flask import Flask

from flask_jobq import state_for
from flask_jobq.cli import jobq_cli
from tests.helpers import BOUNDED_WAIT, Monitor, eventually


def test_the_monitor_and_the_cli_list_the_live_pools(app: Flask, monitor: Monitor) -> None:
    assert monitor.get("/workers").get_json() == {"workers": []}
    queue = state_for(app).queue
    pool = queue.start_workers(concurrency=3, name="mailers", queues=["default", "other"])
    try:
        eventually(lambda: len(queue.workers()) == 1)
        [shown] = monitor.get("/workers").get_json()["workers"]
        assert shown == queue.workers()[0].as_dict()
        assert (shown["name"], shown["pid"], shown["owner"]) == ("mailers", os.getpid(), pool.owner)
        assert (shown["queues"], shown["concurrency"], shown["stopping"]) == (
            ["default", "other"],
            3,
            False,
        )

        if "jobq" not in app.cli.commands:
            app.cli.add_command(jobq_cli)
        runner = app.test_cli_runner()
        listed = runner.invoke(args=["jobq", "workers", "--json"])
        assert listed.exit_code == 0, listed.output
        assert json.loads(listed.stdout) == {"workers": [shown]}
        table = runner.invoke(args=["jobq", "workers"]).stdout
        assert "HOST" in table.splitlines()[0]
        assert "mailers" in table
        assert "default,other" in table
    finally:
        pool.stop(timeout=BOUNDED_WAIT)
    assert monitor.get("/workers").get_json() == {"workers": []}
