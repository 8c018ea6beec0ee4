"""A fake third-party API that enforces its own rate limit, for jobq's examples and tests.

It behaves like a real provider's "N requests per W seconds" limit: a strict
sliding window over the requests it has served, answering ``429 Too Many
Requests`` (with a JSON error and a ``Retry-After`` header) to any request that
would exceed it. Standard library only; it listens on 127.0.0.1.

Endpoints:

* ``GET /enrich?item=...`` answers ``{"item": ..., "upper": ..., "length": ...}``
  after a simulated latency, or 429 when over the limit.
* ``GET /stats`` answers the counters ``{"served": ..., "refused_429": ...}``;
  it is not rate limited.

From Python::

    with start_fake_api(limit=5, per=0.5) as api:
        with urllib.request.urlopen(f"{api.url}/enrich?item=apple") as response:
            print(json.load(response))
        print(api.stats())

From a shell, at the repository's root::

    python3 dev.py run examples/fake_api.py --port 8001 --limit 5 --per 1
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"


@dataclass(frozen=True)
class FakeApiStats:
    """Counters of one fake API server since it started."""

    served: int
    refused_429: int


class SlidingWindow:
    """The provider's side of the limit: at most ``limit`` requests served in any ``per`` s.

    Only served requests count against the window; refused ones do not.
    """

    def __init__(self, limit: int, per: float) -> None:
        if limit < 1 or per <= 0:
            raise ValueError(f"need limit >= 1 and per > 0, got limit={limit!r} per={per!r}")
        self.limit = limit
        self.per = per
        self._recent: deque[float] = deque()
        self._served = 0
        self._refused = 0
        self._lock = threading.Lock()

    def admit(self) -> float:
        """Count one request: 0.0 if it may be served, else seconds until one could be."""
        with self._lock:
            now = time.monotonic()
            while self._recent and self._recent[0] <= now - self.per:
                self._recent.popleft()
            if len(self._recent) < self.limit:
                self._recent.append(now)
                self._served += 1
                return 0.0
            self._refused += 1
            return self._recent[0] + self.per - now

    def stats(self) -> FakeApiStats:
        """A snapshot of the counters."""
        with self._lock:
            return FakeApiStats(served=self._served, refused_429=self._refused)


class FakeApiServer(ThreadingHTTPServer):
    """The HTTP server, holding the limit and the simulated latency for its handlers."""

    # Handler threads are joined by server_close(), so stop() leaves none behind.
    daemon_threads = False

    def __init__(self, port: int, window: SlidingWindow, latency: float, quiet: bool) -> None:
        super().__init__((HOST, port), _Handler)
        self.window = window
        self.latency = latency
        self.quiet = quiet


class _Handler(BaseHTTPRequestHandler):
    server: FakeApiServer
    # Socket timeout, so a client that connects and says nothing cannot hold stop() forever.
    timeout = 5.0

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/stats":
            self._send_json(HTTPStatus.OK, asdict(self.server.window.stats()))
        elif url.path == "/enrich":
            self._enrich(parse_qs(url.query).get("item", [""])[0])
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {url.path}"})

    def _enrich(self, item: str) -> None:
        retry_after = self.server.window.admit()
        if retry_after > 0:
            window = self.server.window
            self._send_json(
                HTTPStatus.TOO_MANY_REQUESTS,
                {"error": f"rate limit exceeded: {window.limit} requests per {window.per:g} s"},
                headers={"Retry-After": str(math.ceil(retry_after))},
            )
            return
        time.sleep(self.server.latency)
        self._send_json(HTTPStatus.OK, {"item": item, "upper": item.upper(), "length": len(item)})

    def _send_json(
        self, status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class FakeApi:
    """A running fake API server. Use :func:`start_fake_api` to make one."""

    def __init__(self, server: FakeApiServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-api"
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def limit(self) -> int:
        """Requests served per window."""
        return self._server.window.limit

    @property
    def per(self) -> float:
        """Window length in seconds."""
        return self._server.window.per

    def stats(self) -> FakeApiStats:
        """Requests served and refused with 429 so far."""
        return self._server.window.stats()

    def stop(self) -> None:
        """Stop serving, wait for requests in flight, and close the socket. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FakeApi:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_fake_api(
    limit: int = 5, per: float = 1.0, latency: float = 0.05, *, port: int = 0, quiet: bool = True
) -> FakeApi:
    """Serve the fake API from a background thread on 127.0.0.1 and return its handle.

    :param limit: requests served per sliding window; more get 429.
    :param per: window length in seconds.
    :param latency: seconds each served request takes.
    :param port: port to listen on; 0 (the default) picks a free one, see ``.url``.
    :param quiet: do not log each request to stderr.
    """
    server = FakeApiServer(port, SlidingWindow(limit, per), latency, quiet)
    return FakeApi(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--limit", type=int, default=5, help="requests per window (default 5)")
    parser.add_argument("--per", type=float, default=1.0, help="window in seconds (default 1)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    args = parser.parse_args()
    api = start_fake_api(args.limit, args.per, args.latency, port=args.port, quiet=False)
    print(f"fake API on {api.url}: {api.limit} requests per {api.per:g} s; Ctrl-C to stop")
    print(f"  curl '{api.url}/enrich?item=apple'")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
        print(f"stopped; {api.stats()}")


if __name__ == "__main__":
    main()
