"""examples/newsletter served by a real gunicorn for tests/integration/test_gunicorn_redis.py.

``gunicorn 'tests.integration._newsletter_gunicorn_app:create_app()'`` with:

- ``JOBQ_DATABASE``: the queue (a ``redis://`` URL with ``?prefix=`` and
  ``?durability=ignore``), read by the example itself;
- ``NEWSLETTER_SMTP_PORT``: the port on 127.0.0.1 of the SMTP server the test
  runs, so that every worker process sends to one server that counts what it got
  (each process still starts the example's own server too, unused);
- ``NEWSLETTER_LEASE_SECONDS``: ``JOBQ_LEASE_SECONDS``, short so that the jobs a
  killed process held are rescued quickly.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from flask import Flask

from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "newsletter"


def _example() -> ModuleType:
    name = "newsletter_example_app"
    module = sys.modules.get(name)
    if module is None:
        sys.path.insert(0, str(EXAMPLE))  # the example imports local_smtp beside it
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def create_app() -> Flask:
    app: Flask = _example().create_app(
        {
            "JOBQ_EMAIL": {"port": int(os.environ["NEWSLETTER_SMTP_PORT"])},
            "JOBQ_LEASE_SECONDS": float(os.environ.get("NEWSLETTER_LEASE_SECONDS", "2")),
        },
        refuse_every=0,
    )
    return app
