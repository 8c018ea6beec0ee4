"""The worker's own health check: ``jobq worker --health-port PORT`` (and ``flask jobq
worker``) answer ``GET /health`` over plain HTTP for a load balancer, Docker's
``HEALTHCHECK`` or a Kubernetes probe.

The answers (JSON): ``{"status": "ok", "problems": []}`` with 200, or with 503
``{"status": "unavailable", "problems": [...]}`` (the database does not answer,
the pool died, or with ``?max_age=SECONDS`` a job has waited longer) or
``{"status": "stopping", ...}`` from the stop signal until the process exits,
so an orchestrator sees the drain. ``?max_age=`` that is not a number of seconds
>= 0 gets 400; another path 404; another method than GET or HEAD 405. No job data
is ever served. Probes are logged at DEBUG only, never one line each at INFO.

With ``jobq worker --metrics``, the same server answers ``GET /metrics`` with a
Prometheus scrape (text format; made by a function the caller passes, see
:mod:`jobq.metrics`); like the health check it has no authorisation of its own:
it listens on this machine only unless ``--health-host`` says otherwise.

Rule: the standard library's :mod:`http.server` and the core check
(:mod:`jobq.worker.health`); never the pool or the queue directly.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import CommandError
from ..worker.health import AnswersAge, RunsWorkers, check_health, parse_max_age

logger = logging.getLogger("jobq.cli")

DEFAULT_HEALTH_HOST = "127.0.0.1"
"""Where the worker's health check listens unless told otherwise: this host only.
In a container, bind ``0.0.0.0`` so the orchestrator can reach it."""

HEALTH_PATHS = ("/health", "/")
"""The paths that answer the health check."""

METRICS_PATH = "/metrics"
"""The path of the Prometheus scrape, with ``--metrics``."""

_REQUEST_TIMEOUT = 5.0  # seconds a probe's connection may idle before it is dropped


class HealthServer:
    """A tiny HTTP server answering the worker's health check from a daemon thread.

    The constructor binds ``host``:``port`` at once (port 0: a free one, see
    :attr:`port`), so a port in use fails before any job is claimed; raises
    :class:`~jobq.errors.CommandError` saying so. :meth:`start` serves from a
    daemon thread; :meth:`close` stops serving and frees the port.
    ``stopping`` is asked at each probe: True from the stop signal on.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        queue: AnswersAge,
        pool: Callable[[], RunsWorkers | None],
        stopping: Callable[[], bool],
        metrics: Callable[[], tuple[bytes, str]] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise CommandError(f"--health-port must be between 0 and 65535, got {port}")
        self._queue = queue
        self._pool = pool
        self._stopping = stopping
        self.metrics = metrics
        """Makes a scrape for ``GET /metrics``: (body, content type); None: 404."""
        try:
            server_class = _Server6 if ":" in host else _Server
            self._server = server_class((host, port), self._handler_class())
        except OSError as exc:
            raise CommandError(_cannot_listen(host, port, exc)) from None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address listened on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The health check's URL, e.g. ``http://127.0.0.1:8081/health``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/health"

    def start(self) -> None:
        """Serve from a daemon thread until :meth:`close`."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="jobq-health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving (a probe being answered finishes) and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def answer(self, query: str) -> tuple[int, dict[str, Any]]:
        """The status code and JSON body for a probe with this query string."""
        values = parse_qs(query, keep_blank_values=True).get("max_age")
        try:
            max_age = parse_max_age(values[-1] if values else None)
        except ValueError as exc:
            return 400, {"status": "bad request", "problems": [str(exc)]}
        report = check_health(
            self._queue,
            pool=self._pool(),
            workers_expected=True,
            max_age=max_age,
            stopping=self._stopping(),
        )
        return report.http_status, {"status": report.status, "problems": list(report.problems)}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_HealthHandler):
            health = server

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_port = False  # a second worker on the same port is an error, not a share

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up in DNS, which can stall the start.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _HealthHandler(BaseHTTPRequestHandler):
    health: HealthServer
    timeout = _REQUEST_TIMEOUT

    def version_string(self) -> str:
        return "jobq-health"

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        url = urlsplit(self.path)
        if url.path == METRICS_PATH and self.health.metrics is not None:
            data, content_type = self.health.metrics()
            self._send_bytes(200, data, content_type, with_body=with_body)
            return
        if url.path not in HEALTH_PATHS:
            code, body = 404, {"status": "not found", "problems": ["the health check is /health"]}
        else:
            code, body = self.health.answer(url.query)
        self._send(code, body, with_body=with_body)

    def _refuse_method(self) -> None:
        self._send(
            405, {"status": "method not allowed", "problems": ["use GET"]}, allow="GET, HEAD"
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _send(
        self, code: int, body: dict[str, Any], *, with_body: bool = True, allow: str = ""
    ) -> None:
        self._send_bytes(
            code, json.dumps(body).encode(), "application/json", with_body=with_body, allow=allow
        )

    def _send_bytes(
        self, code: int, data: bytes, content_type: str, *, with_body: bool, allow: str = ""
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes come every few seconds: one INFO line each would drown the job log.
        logger.debug("health check from %s: " + format, self.address_string(), *args)


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        why = "the port is in use by another process; choose another --health-port"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges); choose another --health-port"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "this host has no such address; check --health-host"
    else:
        why = f"{exc.strerror or exc}; check --health-host and --health-port"
    return f"cannot serve the health check on {host}:{port}: {why}"
