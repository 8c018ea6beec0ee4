"""The monitoring blueprint: JSON endpoints to look at and steer an app's queue.

Mounted by :func:`register_monitor` at ``JOBQ_MONITOR_URL_PREFIX`` (default
``/jobq``); the views find the queue and pool through ``current_app``
(:func:`flask_jobq.state.state_for`), so one blueprint serves any app.

Security rules, each the lesson of another queue's dashboard:

- ``GET <prefix>`` (and ``<prefix>/``) answers an index of the endpoints, or the
  HTML dashboard (:mod:`flask_jobq.dashboard`, ``<prefix>/ui/``) to browsers.
- Every request but the health endpoint's is authorised by
  ``JOBQ_MONITOR_AUTH``, a callable taking no arguments (it reads
  :data:`flask.request`) that returns exactly ``True`` to allow. Without one
  every endpoint answers 403, except in testing mode (for test clients) and in
  debug mode, where it answers local requests only
  (:func:`flask_jobq.is_local_request`: from a loopback address, naming a
  loopback host in ``Host``, through no proxy), so that neither a page using
  DNS rebinding nor a client behind a local proxy reaches a debug server's
  monitor.
- ``<prefix>/health`` is open by default, with the status alone, so a load
  balancer can call it; ``JOBQ_HEALTH_AUTH`` closes or protects it, and monitor
  credentials add the details (:mod:`flask_jobq.health`).
- ``<prefix>/metrics`` (Prometheus text) is authorised by ``JOBQ_METRICS_AUTH``, a
  bearer token or a callable (:mod:`flask_jobq.metrics`).
- Nothing changes on GET. POST endpoints need a JSON body (``{}`` will do) or
  the header ``X-Jobq-Request: 1``: a cross-site page can send neither
  without a CORS preflight, so a forged form post is refused with 415. A
  body larger than :data:`MAX_BODY_SIZE` is refused with 413, JSON nested too
  deep to decode with 400.
- Every answer under the prefix is JSON (but the metrics), errors included:
  ``{"status": 404, "error": "Not Found", "message": "..."}``.

The OpenAPI description (:mod:`flask_jobq.openapi`) is served at ``/openapi.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from flask import Blueprint, Flask, abort, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed

import jobq
from jobq.errors import JobNotFound, TooManyPausedQueues
from jobq.job import JobStatus
from jobq.schedules import ScheduleInfo
from jobq.storage.base import Stats
from jobq.storage.job_logs import logs_as_dict

from .access import authorise_request
from .batch_views import register_batch_views
from .bulk_views import register_bulk_views
from .config import DEFAULT_URL_PREFIX as DEFAULT_URL_PREFIX
from .config import AuthCallback as AuthCallback
from .config import MonitorConfig
from .dashboard import DASHBOARD_PATH, make_dashboard, overview_page, wants_html
from .health import HEALTH_ENDPOINT, authorise_health, health
from .history_views import register_history_views
from .metrics import METRICS_ENDPOINT, authorise_metrics, metrics
from .monitor_input import CSRF_HEADER as CSRF_HEADER
from .monitor_input import DEFAULT_PAGE_SIZE as DEFAULT_PAGE_SIZE
from .monitor_input import MAX_BODY_SIZE as MAX_BODY_SIZE
from .monitor_input import MAX_JOB_ID as _MAX_JOB_ID
from .monitor_input import MAX_PAGE_SIZE as MAX_PAGE_SIZE
from .monitor_input import command_body as _command_body
from .monitor_input import error as _error
from .monitor_input import job_json as job_json
from .openapi import openapi_spec
from .state import state_for

BLUEPRINT_NAME = "jobq_monitor"
"""Name of the monitoring blueprint (endpoints are ``jobq_monitor.<view>``)."""

INDEX_LINKS = {
    "stats": "stats",
    "jobs": "list_jobs",
    "schedules": "list_schedules",
    "workers": "list_workers",
    "running": "running",
    "batches": "list_batches",
    "health": HEALTH_ENDPOINT,
    "openapi": "openapi",
}
"""What ``GET <prefix>/`` links to: the name in its ``links`` and the view's endpoint."""


def register_monitor(app: Flask) -> Blueprint | None:
    """Mount the monitoring blueprint on ``app``, which must have the jobq extension.

    Reads, with ``app.config.setdefault``:

    ``JOBQ_MONITOR_URL_PREFIX``
        URL path the endpoints live under, starting with ``/``. Default
        ``"/jobq"``; None mounts no monitor.
    ``JOBQ_MONITOR_AUTH``
        a callable taking no arguments, returning True to allow the request.
        Default None: every request is refused with 403, except when
        ``app.testing`` is true, and local requests
        (:func:`flask_jobq.is_local_request`) when ``app.debug`` is true.

    Also makes routing errors under the prefix (unknown route 404, wrong
    method 405) JSON, after the same authorisation, without touching the
    app's own error handlers. Returns the blueprint, or None when disabled.
    Raises TypeError or ValueError for a bad setting, naming the key.
    """
    prefix = MonitorConfig.from_config(app.config).url_prefix
    if prefix is None:
        return None
    blueprint = make_blueprint()
    app.register_blueprint(blueprint, url_prefix=prefix)

    def json_routing_errors() -> ResponseReturnValue | None:
        # Flask matches URLs at app level, so the blueprint's handlers never see
        # these; a before_request hook answers them without replacing the app's.
        error = request.routing_exception
        if error is None or not (request.path == prefix or request.path.startswith(prefix + "/")):
            return None
        denied = authorise_request()
        if denied is not None:
            return denied
        if isinstance(error, HTTPException):
            return _http_error(error)
        return None

    app.before_request(json_routing_errors)
    return blueprint


def make_blueprint() -> Blueprint:
    """A new monitoring blueprint; its views use the jobq state of ``current_app``.

    :func:`register_monitor` is the usual way in; register this one yourself
    with ``app.register_blueprint(make_blueprint(), url_prefix=...)`` to choose
    the prefix (routing errors under it are then HTML, Flask's default).
    """
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    health_endpoint = f"{BLUEPRINT_NAME}.{HEALTH_ENDPOINT}"
    metrics_endpoint = f"{BLUEPRINT_NAME}.{METRICS_ENDPOINT}"

    @bp.before_request
    def authorise() -> ResponseReturnValue | None:
        if request.endpoint == health_endpoint:  # open to load balancers by default
            return authorise_health()
        if request.endpoint == metrics_endpoint:  # scrapers carry a token, not cookies
            return authorise_metrics()
        return authorise_request()

    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(JobNotFound, _job_not_found)
    bp.register_error_handler(jobq.StorageError, _storage_error)

    bp.register_blueprint(make_dashboard(), url_prefix=DASHBOARD_PATH)

    @bp.get("/", strict_slashes=False)
    def index() -> ResponseReturnValue:
        """The monitor's endpoints: a link to each collection, and the OpenAPI document
        that describes them all. Browsers (``Accept`` preferring HTML) get the
        dashboard's overview instead."""
        if wants_html():
            return overview_page()
        return {
            "name": "jobq monitor",
            "links": {name: url_for(f".{endpoint}") for name, endpoint in INDEX_LINKS.items()},
        }

    @bp.get("/stats")
    def stats() -> ResponseReturnValue:
        """Counts per queue and status, as ``queue.stats()`` gives them."""
        return stats_json(state_for().queue.stats())

    @bp.get("/jobs/<int:job_id>")
    def get_job(job_id: int) -> ResponseReturnValue:
        """One job."""
        return job_json(state_for().queue.get(_job_id(job_id)))

    @bp.get("/jobs/<int:job_id>/logs")
    def job_logs(job_id: int) -> ResponseReturnValue:
        """The lines the job's tasks kept with ``jobq.current_job().log()``."""
        return logs_as_dict(job_id, state_for().queue.job_logs(_job_id(job_id)))

    @bp.post("/jobs/<int:job_id>/cancel")
    def cancel_job(job_id: int) -> ResponseReturnValue:
        """Cancel a job (a running one is asked to stop); returns the job. A job that
        already finished is a conflict (409): there is nothing left to cancel."""
        _command_body()
        queue = state_for().queue
        job = queue.get(_job_id(job_id))
        if job.status.is_final:
            return _error(
                409,
                "Conflict",
                f"job {job.id} is already {job.status.value}; there is nothing to cancel",
            )
        return job_json(queue.cancel(job.id))

    @bp.post("/jobs/<int:job_id>/retry")
    def retry_job(job_id: int) -> ResponseReturnValue:
        """Run a failed or cancelled job again, after ``delay`` seconds (default 0)."""
        body = _command_body()
        delay = body.get("delay", 0)
        seconds = math.nan
        if isinstance(delay, (int, float)) and not isinstance(delay, bool):
            try:
                seconds = float(delay)
            except OverflowError:  # an integer beyond float range, such as 10**400
                seconds = math.inf
        if not (math.isfinite(seconds) and seconds >= 0):
            shown = repr(delay) if len(repr(delay)) <= 50 else f"{repr(delay)[:50]}..."
            abort(400, f"delay must be a number of seconds >= 0, got {shown}")
        queue = state_for().queue
        job_id = _job_id(job_id)
        try:
            return job_json(queue.retry(job_id, delay=seconds))
        except ValueError as exc:
            queue.get(job_id)  # a job purged meanwhile is a 404, not a conflict
            return _error(409, "Conflict", str(exc))

    @bp.post("/queues/<name>/pause")
    def pause_queue(name: str) -> ResponseReturnValue:
        """Stop workers everywhere from starting jobs of this queue."""
        name = _queue_name(name)
        _command_body()
        try:
            state_for().queue.pause(name)
        except TooManyPausedQueues as exc:
            return _error(409, "Conflict", str(exc))
        return {"queue": name, "paused": True}

    @bp.post("/queues/<name>/resume")
    def resume_queue(name: str) -> ResponseReturnValue:
        """Let workers start jobs of this queue again."""
        name = _queue_name(name)
        _command_body()
        state_for().queue.resume(name)
        return {"queue": name, "paused": False}

    @bp.get("/schedules")
    def list_schedules() -> ResponseReturnValue:
        """Every recurring schedule stored in the database, by name."""
        schedules = state_for().queue.schedules()
        return {"schedules": [schedule_json(info) for info in schedules]}

    # ``path:`` as a schedule name may hold "/" (sent as %2F); no merging of "//", which
    # would redirect a POST for an unknown name such as "a//b" to the schedule "a/b".
    @bp.post("/schedules/<path:name>/pause", merge_slashes=False)
    def pause_schedule(name: str) -> ResponseReturnValue:
        """Stop firing a schedule in every process; returns the schedule."""
        _command_body()
        queue = state_for().queue
        return schedule_json(_known_schedule(name, queue.pause_schedule))

    @bp.post("/schedules/<path:name>/resume", merge_slashes=False)
    def resume_schedule(name: str) -> ResponseReturnValue:
        """Fire a schedule again from its next fire time after now; returns the schedule."""
        _command_body()
        queue = state_for().queue
        return schedule_json(_known_schedule(name, queue.resume_schedule))

    @bp.post("/schedules/<path:name>/trigger", merge_slashes=False)
    def trigger_schedule(name: str) -> ResponseReturnValue:
        """Enqueue a schedule's job now (its fire times stay as they are): 202 with
        the new job and its URL in ``Location``."""
        _command_body()
        queue = state_for().queue
        job = _known_schedule(name, queue.trigger_schedule)
        return job_json(job), 202, {"Location": url_for(".get_job", job_id=job.id)}

    @bp.get("/workers")
    def list_workers() -> ResponseReturnValue:
        """The worker pools live now in every process and on every host, by host, pid
        and name (:meth:`jobq.DurableQueue.workers`, :meth:`jobq.WorkerInfo.as_dict`)."""
        return {"workers": [info.as_dict() for info in state_for().queue.workers()]}

    @bp.get("/running")
    def running() -> ResponseReturnValue:
        """What each busy worker thread of this process's pool is doing now; a thread
        still in a task past its timeout shows ``"stuck": true`` and ``stuck_since``
        (see :meth:`jobq.WorkerPool.running`)."""
        pool = state_for().pool
        if pool is None:
            return {"pool": None, "running": []}
        return {
            "pool": {
                "name": pool.name,
                "alive": pool.is_alive,
                "concurrency": pool.concurrency,
                "queues": list(pool.queues),
            },
            "running": sorted(pool.running(), key=lambda entry: int(entry["id"])),
        }

    bp.add_url_rule("/health", HEALTH_ENDPOINT, health)
    bp.add_url_rule("/metrics", METRICS_ENDPOINT, metrics)

    @bp.get("/openapi.json")
    def openapi() -> ResponseReturnValue:
        """The OpenAPI 3.1 description of these endpoints."""
        server = url_for(".openapi").removesuffix("/openapi.json")
        return openapi_spec(server)

    register_bulk_views(bp)  # the job list with filters, count and bulk actions
    register_history_views(bp)
    register_batch_views(bp)  # batches: counts, callbacks, cancel
    return bp


def schedule_json(info: ScheduleInfo) -> dict[str, Any]:
    """A schedule as the monitor shows it: :meth:`ScheduleInfo.as_dict
    <jobq.schedules.ScheduleInfo.as_dict>`, times in epoch seconds."""
    return info.as_dict()


def stats_json(stats: Stats) -> dict[str, Any]:
    """:class:`jobq.storage.base.Stats` as JSON: per queue, totals, paused queues."""
    totals = dict.fromkeys(_STATUSES, 0)
    queues: dict[str, Any] = {}
    for name, queue_stats in sorted(stats.queues.items()):
        counts = {status.value: queue_stats.counts.get(status, 0) for status in JobStatus}
        for status, count in counts.items():
            totals[status] += count
        queues[name] = {
            "counts": counts,
            "scheduled": queue_stats.scheduled,
            "oldest_runnable_age": queue_stats.oldest_runnable_age,
            "paused": name in stats.paused,
        }
    return {
        "queues": queues,
        "totals": totals,
        "completed_last_minute": stats.completed_last_minute,
        "failed_last_minute": stats.failed_last_minute,
        "paused": sorted(stats.paused),
    }


_STATUSES = tuple(status.value for status in JobStatus)


def _queue_name(name: str) -> str:
    """``name`` from the path, refused with 400 unless it is the name the client sent.

    Servers decode the path before the app sees it, and bytes that are not UTF-8
    come out as U+FFFD (Werkzeug's own server replaces ``%FF`` itself; Werkzeug
    replaces a raw byte that gunicorn passes on), so the bytes the client sent
    are checked instead, in the raw request target (``RAW_URI`` or
    ``REQUEST_URI``, which servers pass untouched) and in ``PATH_INFO``: pausing
    the queue ``"\ufffd"`` is not what a client sending ``%FF`` asked. Raw
    non-ASCII bytes in the request line, which HTTP does not allow, are refused
    too: Werkzeug's server decodes them as Latin-1, so raw ``é`` would name the
    queue ``"Ã©"``. A NUL is refused as no database keeps one in a name.
    """
    target = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if target is not None and not target.partition("?")[0].isascii():
        abort(
            400,
            "the URL holds bytes that are not ASCII; percent-encode the queue "
            "name's UTF-8 bytes (é is %C3%A9)",
        )
    try:
        # PEP 3333: PATH_INFO carries the decoded bytes as Latin-1 characters.
        request.environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        if target is not None:
            unquote_to_bytes(target.partition("?")[0]).decode("utf-8")
    except UnicodeError:
        abort(400, "the queue name in the URL is not valid UTF-8 (percent-encode its UTF-8 bytes)")
    if "\x00" in name:
        abort(400, "a queue name cannot contain a NUL character")
    return name


_T = TypeVar("_T")


def _known_schedule(name: str, action: Callable[[str], _T]) -> _T:
    """``action(name)``, with an unknown schedule answered 404."""
    try:
        return action(name)
    except jobq.ScheduleNotFound:
        shown = repr(name) if len(name) <= 200 else f"{name[:200]!r}... ({len(name)} characters)"
        abort(404, f"no schedule named {shown}")


def _job_id(job_id: int) -> int:
    if job_id > _MAX_JOB_ID:
        raise JobNotFound(job_id)
    return job_id


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    body, _ = _error(status, exc.name, exc.description or exc.name)
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    return body, status, headers


def _job_not_found(exc: JobNotFound) -> ResponseReturnValue:
    return _error(404, "Not Found", str(exc))


def _storage_error(exc: jobq.StorageError) -> ResponseReturnValue:
    return _error(503, "Service Unavailable", f"the queue's database failed: {exc}")
