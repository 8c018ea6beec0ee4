"""The dashboard's pages and form actions, a blueprint nested in the monitor's.

Mounted at ``<prefix>/ui`` (:func:`make_dashboard`); the monitor's own
``before_request`` authorises every request first (``JOBQ_MONITOR_AUTH``, closed
by default). Pages are GET only and change nothing; each action is a form POST
checked by :func:`~flask_jobq.dashboard.security.csrf_problem`, then answered
with a redirect (post/redirect/get) and its result in a short-lived cookie.

Rule: imports the core, :mod:`flask_jobq.state` and the dashboard's own modules;
never :mod:`flask_jobq.views` (which imports this to answer browsers at ``<prefix>/``).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

import jobq
from jobq.errors import BatchNotFound, JobNotFound, TooManyPausedQueues

from ..state import state_for
from . import data
from .filters import PAGE_SIZES, STATUSES, read_query
from .format import bar_chart, duration, human_number, iso_time, relative_time
from .security import CSRF_FIELD, NOTICE_COOKIE, csrf_problem, csrf_token, secure, set_csrf_cookie

DASHBOARD_NAME = "dashboard"
"""Name of the nested blueprint (endpoints ``jobq_monitor.dashboard.<view>``)."""

DASHBOARD_PATH = "/ui"
"""Where the pages live under the monitor's prefix."""

NAVIGATION = (
    ("overview", "Overview"),
    ("jobs", "Jobs"),
    ("batches", "Batches"),
    ("workers", "Workers"),
    ("queues", "Queues"),
    ("schedules", "Schedules"),
)
"""The navigation bar: endpoint and label of each page."""
BATCHES_PER_PAGE = 50
"""Batches on one page of the batch list, newest first."""

ASSETS = {
    "jobq/dashboard.css": "text/css",
    "jobq/dashboard.js": "text/javascript",
    "jobq/icon.svg": "image/svg+xml",
}
"""The files under ``static/`` the dashboard serves, with their media types."""

_STATIC = Path(__file__).with_name("static")
_MAX_ID = 2**63 - 1
_JOB_ACTIONS = {"cancel": "cancelled", "retry": "queued again"}
_QUEUE_ACTIONS = ("pause", "resume")
_SCHEDULE_ACTIONS = ("pause", "resume", "trigger")


def make_dashboard() -> Blueprint:
    """A new dashboard blueprint, to register on the monitor's blueprint at
    :data:`DASHBOARD_PATH`; its views use the jobq state of ``current_app``."""
    bp = Blueprint(DASHBOARD_NAME, __name__, template_folder="templates")

    @bp.after_request
    def headers(response: Response) -> Response:
        return secure(response, page=request.endpoint != f"{request.blueprint}.static")

    @bp.get("/static/<path:filename>")
    def static(filename: str) -> Response:
        """One of the assets shipped in the package (:data:`ASSETS`), from memory."""
        if filename not in ASSETS:
            abort(404, f"no dashboard asset named {filename[:100]!r}")
        body, mimetype = _asset(filename)
        response = current_app.response_class(body, mimetype=mimetype)
        response.headers["Cache-Control"] = "public, max-age=300"
        response.set_etag(hashlib.sha256(body).hexdigest()[:32])
        return response.make_conditional(request)

    bp.register_error_handler(HTTPException, _html_error)
    bp.register_error_handler(JobNotFound, _job_not_found)
    bp.register_error_handler(jobq.StorageError, _storage_error)

    bp.add_url_rule("/", "overview", overview_page, strict_slashes=False)

    @bp.get("/jobs")
    def jobs() -> Response:
        where = read_query(request.args)
        queue = state_for().queue
        try:
            page = data.jobs_page(queue, where)
        except ValueError as exc:  # a filter the queue refuses, e.g. an argument's value
            abort(400, str(exc))
        return render_page(
            "jobq/jobs.html",
            where=where,
            page=page,
            statuses=STATUSES,
            page_sizes=PAGE_SIZES,
            bulk_actions=data.BULK_ACTIONS,
            queue_names=data.queue_names(queue),
            task_names=sorted(queue.tasks),
        )

    @bp.get("/bulk")
    def bulk_confirm() -> Response:
        action = _bulk_action(request.args)
        where = read_query(request.args)
        if not where.narrows:
            abort(400, "choose at least one filter before a bulk action")
        count = data.bulk_count(state_for().queue, where, action)
        return render_page(
            "jobq/bulk.html", action=action, where=where, count=count, actions=data.BULK_ACTIONS
        )

    @bp.post("/bulk")
    def bulk_run() -> Response:
        action = _checked_form("action", tuple(data.BULK_ACTIONS))
        where = read_query(request.form)
        target = link("jobs", **where.query())
        try:
            result = data.bulk_run(state_for().queue, where, action)
        except ValueError as exc:  # no filter at all
            return notice_redirect(target, str(exc), error=True)
        done, _ = data.BULK_ACTIONS[action]
        message = f"{done} {human_number(result.changed)} jobs"
        if result.skipped:
            message += f", left {human_number(result.skipped)} alone"
        return notice_redirect(target, message)

    @bp.get("/jobs/<int:job_id>")
    def job(job_id: int) -> Response:
        state = state_for()
        running = state.pool.running() if state.pool is not None else []
        detail = data.job_detail(
            state.queue, _job_id(job_id), show_payload=show_payloads(), running=running
        )
        return render_page("jobq/job.html", detail=detail, job=detail.job)

    @bp.post("/jobs/<int:job_id>")
    def job_action(job_id: int) -> Response:
        action = _checked_form("action", tuple(_JOB_ACTIONS))
        queue = state_for().queue
        job_id = _job_id(job_id)
        target = link("job", job_id=job_id)
        if action == "cancel":
            if queue.get(job_id).status.is_final:
                return notice_redirect(target, f"job {job_id} already finished", error=True)
            queue.cancel(job_id)
        else:
            try:
                queue.retry(job_id)
            except ValueError as exc:
                queue.get(job_id)  # a job deleted meanwhile is a 404
                return notice_redirect(target, str(exc), error=True)
        return notice_redirect(target, f"job {job_id} {_JOB_ACTIONS[action]}")

    @bp.get("/batches")
    def batches() -> Response:
        before = _before_arg()
        found = state_for().queue.list_batches(before_id=before, limit=BATCHES_PER_PAGE + 1)
        more = len(found) > BATCHES_PER_PAGE
        shown = found[:BATCHES_PER_PAGE]
        return render_page(
            "jobq/batches.html",
            batches=shown,
            next_before=shown[-1].id if more else None,
            first_page=before is None,
        )

    @bp.get("/batches/<int:batch_id>")
    def batch(batch_id: int) -> Response:
        state = _batch(batch_id).status()
        callbacks = [state_for().queue.get(job_id) for job_id in state.callback_job_ids]
        return render_page(
            "jobq/batch.html", batch=state, meta=state.decoded_meta(), callbacks=callbacks
        )

    @bp.post("/batches/<int:batch_id>")
    def batch_action(batch_id: int) -> Response:
        _checked_form("action", ("cancel",))
        state = _batch(batch_id).cancel()
        return notice_redirect(
            link("batch", batch_id=batch_id),
            f"batch {batch_id} cancelled: {human_number(state.cancelled)} jobs cancelled",
        )

    @bp.get("/workers")
    def workers() -> Response:
        state = state_for()
        pool = state.pool
        views = data.workers(
            state.queue,
            local_owner=pool.owner if pool is not None else None,
            local=pool.running() if pool is not None else (),
        )
        return render_page("jobq/workers.html", workers=views)

    @bp.get("/queues")
    def queues() -> Response:
        summary = data.overview(state_for().queue, with_task_queues=True, charts=False)
        return render_page("jobq/queues.html", overview=summary)

    @bp.post("/queues")
    def queue_action() -> Response:
        action = _checked_form("action", _QUEUE_ACTIONS)
        name = _name_field("queue")
        queue = state_for().queue
        target = link("queues")
        if action == "pause":
            try:
                queue.pause(name)
            except TooManyPausedQueues as exc:
                return notice_redirect(target, str(exc), error=True)
            return notice_redirect(target, f"queue {name!r} paused")
        queue.resume(name)
        return notice_redirect(target, f"queue {name!r} resumed")

    @bp.get("/schedules")
    def schedules() -> Response:
        return render_page("jobq/schedules.html", schedules=data.schedules(state_for().queue))

    @bp.post("/schedules")
    def schedule_action() -> Response:
        action = _checked_form("action", _SCHEDULE_ACTIONS)
        name = _name_field("schedule")
        queue = state_for().queue
        target = link("schedules")
        try:
            if action == "pause":
                queue.pause_schedule(name)
            elif action == "resume":
                queue.resume_schedule(name)
            else:
                job = queue.trigger_schedule(name)
                return notice_redirect(target, f"schedule {name!r} enqueued job {job.id}")
        except jobq.ScheduleNotFound:
            return notice_redirect(target, f"no schedule named {name!r}", error=True)
        return notice_redirect(target, f"schedule {name!r} {action}d")

    return bp


@functools.cache
def _asset(filename: str) -> tuple[bytes, str]:
    return (_STATIC / filename).read_bytes(), ASSETS[filename]


def wants_html() -> bool:
    """True when the request's ``Accept`` prefers HTML to JSON (a browser's does;
    ``*/*``, as curl and most clients send, does not)."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def overview_page() -> Response:
    """The overview: counts per queue and throughput charts (also ``GET <prefix>/``
    for browsers)."""
    summary = data.overview(state_for().queue)
    charts = [
        bar_chart("Per minute, last hour", summary.per_minute),
        bar_chart("Per hour, last day", summary.per_hour, label_format="%d %H:00"),
    ]
    response = render_page("jobq/overview.html", overview=summary, charts=charts)
    response.headers["Vary"] = "Accept"
    return secure(response)


def show_payloads() -> bool:
    """``JOBQ_MONITOR_SHOW_PAYLOADS`` of the current app (default True)."""
    return bool(current_app.config.get("JOBQ_MONITOR_SHOW_PAYLOADS", True))


def _root() -> str:
    """The monitor blueprint's name, from the request's blueprint chain."""
    return request.blueprints[-1] if request.blueprints else "jobq_monitor"


def link(endpoint: str, **values: Any) -> str:
    """URL of a dashboard view (``"jobs"``, ``"static"``, ...) under the current monitor."""
    return url_for(f"{_root()}.{DASHBOARD_NAME}.{endpoint}", **values)


def cookie_path() -> str:
    """The monitor's prefix: the path its cookies are scoped to."""
    return url_for(f"{_root()}.index").rstrip("/") or "/"


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    """Render ``template`` with the pages' common context, as a secured response."""
    notice = request.cookies.get(NOTICE_COOKIE)
    kind, _, text = unquote(notice or "").partition(":")
    html = render_template(
        template,
        link=link,
        navigation=NAVIGATION,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(),
        notice=text if notice else None,
        notice_kind=kind,
        now=state_for().queue.clock.now(),
        show_payloads=show_payloads(),
        live=request.method == "GET" and status == 200,  # an error or a refusal stays put
        iso_time=iso_time,
        relative_time=relative_time,
        duration=duration,
        number=human_number,
        **context,
    )
    response = current_app.response_class(html, status=status, mimetype="text/html")
    set_csrf_cookie(response, cookie_path())
    if notice:
        response.delete_cookie(NOTICE_COOKIE, path=cookie_path())
    return secure(response)


def notice_redirect(target: str, message: str, *, error: bool = False) -> Response:
    """A 303 redirect to ``target`` that shows ``message`` once on the next page."""
    response = redirect(target, code=303)
    text = quote(f"{'error' if error else 'ok'}:{message[:300]}")
    response.set_cookie(
        NOTICE_COOKIE,
        text,
        max_age=60,
        path=cookie_path(),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return response


def _checked_form(field: str, allowed: tuple[str, ...]) -> str:
    """The form's ``field`` after the CSRF check; aborts 403 or 400."""
    problem = csrf_problem()
    if problem is not None:
        abort(403, f"Refused, nothing was done: {problem}.")
    value = request.form.get(field, "")
    if value not in allowed:
        abort(400, f"{field} must be one of {', '.join(allowed)}, got {value[:50]!r}")
    return value


def _name_field(field: str) -> str:
    name = request.form.get(field, "")
    if not name or "\x00" in name or len(name) > 1000:
        abort(400, f"{field} must be a name of 1 to 1000 characters without NUL")
    return name


def _job_id(job_id: int) -> int:
    if job_id > _MAX_ID:
        raise JobNotFound(job_id)
    return job_id


def _before_arg() -> int | None:
    text = request.args.get("before")
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        abort(400, f"before must be a batch id (a whole number from 1), got {text[:40]!r}")
    return int(text)


def _batch(batch_id: int) -> jobq.Batch:
    try:
        if batch_id > _MAX_ID:
            raise BatchNotFound(batch_id)
        return state_for().queue.get_batch(batch_id)
    except BatchNotFound as exc:
        abort(404, str(exc))


def _bulk_action(values: Any) -> str:
    action = values.get("action", "")
    if action not in data.BULK_ACTIONS:
        abort(400, f"action must be one of {', '.join(data.BULK_ACTIONS)}, got {action[:50]!r}")
    return str(action)


def _error_page(status: int, title: str, message: str) -> Response:
    return render_page("jobq/error.html", status=status, title=title, message=message)


def _html_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return _error_page(status, exc.name, exc.description or exc.name)


def _job_not_found(exc: JobNotFound) -> Response:
    return _error_page(404, "Not Found", str(exc))


def _storage_error(exc: jobq.StorageError) -> Response:
    return _error_page(503, "Service Unavailable", f"the queue's database failed: {exc}")
