"""The newsletter example (examples/newsletter/app.py) as benchmarks/bench_rescue.py
serves it under gunicorn: ``gunicorn -w 4 'benchmarks._rescue_app:create()'``.

Environment:

- ``BENCH_RESCUE_DB``: the queue's SQLite file;
- ``BENCH_RESCUE_SMTP_PORT``: the port of the benchmark's own SMTP server on
  127.0.0.1, where every gunicorn worker sends (one server counts every email);
- ``BENCH_RESCUE_LEASE_ONLY=1``: turn the release of dead pools' jobs off in this
  process, so that a killed worker's jobs wait for their leases as before it
  existed (this measurement's switch only, not a setting of jobq).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "newsletter"


def _newsletter() -> Any:
    sys.path.insert(0, str(EXAMPLE))  # its local_smtp module
    spec = importlib.util.spec_from_file_location("newsletter_example_app", EXAMPLE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def lease_only() -> None:
    """Leave killed workers' jobs to their leases (the behaviour before the registry's check)."""
    from jobq.worker import services

    services.DeadPoolRescuer.active = property(lambda self: False)  # type: ignore[assignment]


def create() -> Any:
    """The newsletter app, sending to the benchmark's SMTP server."""
    if os.environ.get("BENCH_RESCUE_LEASE_ONLY") == "1":
        lease_only()
    newsletter = _newsletter()
    return newsletter.create_app(
        {
            "JOBQ_DATABASE": os.environ["BENCH_RESCUE_DB"],
            "JOBQ_EMAIL": {"host": "127.0.0.1", "port": int(os.environ["BENCH_RESCUE_SMTP_PORT"])},
        }
    )
