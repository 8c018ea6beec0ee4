"""jobq's newsletter demo: one request queues 10,000 emails; the app's workers send them.

``POST /newsletter`` stores one durable job per recipient in a single
transaction and answers 202 at once. The worker threads that flask_jobq starts
in the serving process deliver them with jobq's ready-made email handler,
``jobq.handlers.email``, which the extension installs from
``app.config["JOBQ_EMAIL"]``, to a local SMTP server (aiosmtpd, started by this
example on a free port of 127.0.0.1, see local_smtp.py). That server answers
``451 try again later`` to the first attempt for every 500th recipient; the
handler treats a 4xx reply as temporary, so those deliveries are retried with
backoff (a 5xx reply fails the job at once). Each worker thread keeps one SMTP
connection open and reuses it. The emails of one request are a jobq batch: when
the last of them has ended (sent, or failed for good), the batch's callback job
writes the report, "10,000 sent, 3 failed", once, whichever worker ended it;
``GET /newsletter/<batch id>`` shows the batch's counts and that report.
``GET /newsletter/progress`` shows the queue's
counts next to what the SMTP server received, and the extension's JSON monitor
is mounted at ``/jobq``, open to local requests only: from a loopback address,
naming a loopback host (``localhost``, ``127.0.0.1``, ``[::1]``) in ``Host``,
through no proxy (``flask_jobq.is_local_request``).

Run it from the repository's root (``dev.py run`` sets up ``.venv`` first, with
aiosmtpd; ``python3 dev.py demo`` is the same as the first line)::

    python3 dev.py run examples/newsletter/app.py              # serve on http://127.0.0.1:5000
    python3 dev.py run examples/newsletter/app.py --check      # queue 10,000, verify, exit 0/1
    python3 dev.py run examples/newsletter/app.py --check --count 2000

The job queue lives in ``instance/newsletter.db`` next to this file; stop the app
while emails wait and start it again: they are still queued and get sent.

To keep the jobs in Redis instead (the jobq[redis] extra), name the server with
``--db`` or with ``JOBQ_DATABASE`` in the environment; nothing else changes::

    python3 dev.py run examples/newsletter/app.py --db redis://localhost:6379/0
    JOBQ_DATABASE='redis://localhost:6379/0?prefix=newsletter:' python3 dev.py demo

With a Redis URL, ``--check`` keeps its jobs under a prefix of its own
(``jobq-newsletter-check-<random>:``) unless the URL gives one.

Under gunicorn (``JOBQ_DATABASE=redis://... gunicorn -w 4 'app:create_app()'``
in this folder) every worker process serves the queue, but each also starts its
own local SMTP server: ``/newsletter/progress`` shows the server of the process
that answered, and a greylisted recipient may be refused once per process
before it gets through. The batch's report (``GET /newsletter/<batch>``) counts
every process's emails. tests/integration/test_gunicorn_redis.py runs it with
one shared SMTP server and kills worker processes mid-run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, jsonify, request, url_for
from local_smtp import SmtpServer, start_smtp_server
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

import jobq
from flask_jobq import JobQ, is_local_request
from flask_jobq.handlers import send_email
from jobq.handlers import email

HERE = Path(__file__).resolve().parent
EXTENSION_KEY = "newsletter"
QUEUE = "newsletter"  # the emails' own queue, served by this app's workers
REPORTS = "newsletter-reports"  # the batch callbacks' queue, served by the same workers
SENDER = "newsletter@example.com"
MAX_RECIPIENTS = 10_000
MAX_SUBJECT_LENGTH = 200
CONCURRENCY = 4  # worker threads, hence SMTP connections, per serving process
MAX_ATTEMPTS = 5
# Temporary refusals (4xx) are retried after 0.25-0.5 s, then 0.5-1 s, 1-2 s, 2-4 s.
RETRY_DELAY = 0.5
SMTP_TIMEOUT = 10.0
REFUSE_EVERY = 500  # the local server answers 451 to the first try for every 500th recipient
EXAMPLE_SUBJECT = "jobq weekly #1"


def email_settings(server: SmtpServer) -> dict[str, Any]:
    """``JOBQ_EMAIL``: the fields of :class:`jobq.handlers.email.EmailSettings`."""
    return {
        "host": server.host,
        "port": server.port,
        "default_sender": SENDER,
        "retry_delay": RETRY_DELAY,
        "max_attempts": MAX_ATTEMPTS,
        "timeout": SMTP_TIMEOUT,
    }


def message_text(recipient: str, subject: str) -> str:
    """The body of the email to ``recipient``."""
    return (
        f"Hello {recipient.split('@')[0]},\n\n"
        f"this is {subject!r}, sent to you by a jobq worker thread.\n\n"
        "-- \nthe jobq newsletter demo\n"
    )


def smtp_server_of(app: Flask) -> SmtpServer:
    """The local SMTP server this app started."""
    server: SmtpServer = app.extensions[EXTENSION_KEY]
    return server


def mailer_of(app: Flask) -> email.Mailer:
    """The email handler's SMTP connections, as installed on the app's queue."""
    mailer: email.Mailer = jobq_ext.state(app).queue.extensions[email.EXTENSION_KEY]
    return mailer


jobq_ext = JobQ()


@jobq_ext.task("newsletter_report", queue=REPORTS)
def newsletter_report(batch: jobq.BatchSummary) -> str:
    """The batch's callback, run once when every email of a newsletter has ended:
    the admin's report, kept as this job's result (and logged)."""
    report = f"{batch['completed']:,} sent, {batch['failed']:,} failed"
    if batch["cancelled"]:
        report += f", {batch['cancelled']:,} cancelled"
    current_app.logger.info("newsletter %r: %s", batch["meta"]["subject"], report)
    return report


def batch_report(batch_id: int) -> dict[str, Any]:
    """A newsletter's batch: counts, and the report once its callback has run."""
    state = jobq_ext.queue.get_batch(batch_id).status()
    report = None
    if state.callback_job_ids:
        callback = jobq_ext.queue.get(state.callback_job_ids[0])
        if callback.status is jobq.JobStatus.COMPLETED:
            report = callback.decoded_result()
    return {
        "batch": state.id,
        "subject": state.decoded_meta()["subject"],
        "jobs": {
            "total": state.total,
            "pending": state.pending,
            "processing": state.processing,
            "completed": state.completed,
            "failed": state.failed,
            "cancelled": state.cancelled,
        },
        "finished": state.finished,
        "report": report,
    }


def create_app(
    test_config: dict[str, Any] | None = None,
    *,
    refuse_every: int = REFUSE_EVERY,
    reject_every: int = 0,
) -> Flask:
    """Build the app and start its local SMTP server; stop both with :func:`close_app`.

    ``test_config`` overrides the configuration (e.g. ``JOBQ_DATABASE``, a path
    relative to the instance folder or absolute, or a URL; without it, the
    environment's ``JOBQ_DATABASE``, else ``newsletter.db``; ``JOBQ_EMAIL`` keys are merged
    into the example's). The SMTP server answers 451 to the first attempt for
    every ``refuse_every``-th recipient and 550 to every ``reject_every``-th one
    (0: never).
    """
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    app.config.update(
        # In the instance folder, unless the environment names another database
        # (a redis:// or postgresql:// URL, or a path).
        JOBQ_DATABASE=os.environ.get("JOBQ_DATABASE") or "newsletter.db",
        JOBQ_CONCURRENCY=CONCURRENCY,
        JOBQ_QUEUES=[QUEUE, REPORTS],
        # The monitor at /jobq is closed unless we say who may use it: this machine only.
        # Not the client address alone: a page using DNS rebinding reaches us from
        # 127.0.0.1 under its own host name, and a local proxy forwards everyone.
        JOBQ_MONITOR_AUTH=is_local_request,
    )
    app.config.update(test_config or {})
    server = start_smtp_server(refuse_every=refuse_every, reject_every=reject_every)
    try:
        # The extension installs jobq.handlers.email with these settings.
        app.config["JOBQ_EMAIL"] = {**email_settings(server), **app.config.get("JOBQ_EMAIL", {})}
        app.extensions[EXTENSION_KEY] = server
        jobq_ext.init_app(app)
    except BaseException:
        server.stop()
        raise

    @app.errorhandler(HTTPException)
    def json_error(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=error.name, message=error.description), error.code or 500

    @app.get("/")
    def index() -> dict[str, Any]:
        base = request.host_url.rstrip("/")
        body = json.dumps({"subject": EXAMPLE_SUBJECT, "recipients": MAX_RECIPIENTS})
        return {
            "demo": "jobq newsletter: one request queues up to 10,000 emails and returns at once",
            "how": (
                "POST /newsletter stores one durable job per recipient (user1@example.com, "
                "user2@example.com, ...) in one transaction and answers 202. The app's "
                f"{CONCURRENCY} worker threads send them with jobq.handlers.email, each over "
                f"its own reused connection, to a local SMTP server on {server.host}:{server.port} "
                f"that answers '451 try again later' to the first attempt for every "
                f"{refuse_every}th recipient: those are retried with backoff. Jobs survive a "
                "restart of the app."
            ),
            "endpoints": {
                "GET /": "this description",
                "POST /newsletter": (
                    f'JSON {{"subject": "...", "recipients": N}}, N from 1 to '
                    f"{MAX_RECIPIENTS}; answers 202 with the count and the progress link"
                ),
                "GET /newsletter/progress": "job counts per status and what the SMTP server got",
                "GET /newsletter/<batch>": "one newsletter's counts, and its report once all "
                "its emails have ended (the batch callback's result)",
                "GET /jobq/": "jobq's dashboard, in a browser: jobs, workers, queues, "
                "schedules, bulk retry",
                "GET /jobq/stats": "jobq's monitor (also /jobq/jobs?status=failed, /jobq/running); "
                "it and the dashboard are allowed to local requests only (Host localhost, "
                "127.0.0.1 or [::1], no proxy)",
            },
            "try": [
                f"curl -s -X POST {base}/newsletter -H 'Content-Type: application/json' "
                f"-d '{body}'",
                f"curl -s {base}/newsletter/progress",
                f"curl -s {base}/jobq/stats",
            ],
        }

    @app.post("/newsletter")
    def queue_newsletter() -> tuple[dict[str, Any], int, dict[str, str]]:
        subject, count = parse_newsletter()
        started = time.perf_counter()
        recipients = [f"user{number}@example.com" for number in range(1, count + 1)]
        # One batch: leaving the block seals it, and its callback reports once every
        # email has ended.
        meta = {"subject": subject, "recipients": count}
        with jobq_ext.queue.batch(on_complete=newsletter_report, meta=meta) as batch:
            ids = batch.enqueue_many(
                send_email.options(queue=QUEUE),
                [
                    {"to": to, "subject": subject, "text": message_text(to, subject)}
                    for to in recipients
                ],
            )
        progress = url_for("progress")
        return (
            {
                "queued": len(ids),
                "subject": subject,
                "job_ids": [ids[0], ids[-1]],
                "batch": batch.id,
                "report": url_for("newsletter_batch", batch_id=batch.id),
                "enqueue_seconds": round(time.perf_counter() - started, 3),
                "progress": progress,
            },
            202,
            {"Location": progress},
        )

    @app.get("/newsletter/progress")
    def progress() -> dict[str, Any]:
        stats = jobq_ext.queue.stats()
        queue_stats = stats.queues.get(QUEUE)
        counts = {status.value: 0 for status in jobq.JobStatus}
        if queue_stats is not None:
            counts.update({status.value: n for status, n in queue_stats.counts.items()})
        waiting = counts["pending"] + counts["processing"]
        return {
            "jobs": counts,  # every newsletter job in the database, not only the last request's
            "retries_scheduled": 0 if queue_stats is None else queue_stats.scheduled,
            "completed_last_minute": stats.completed_last_minute,
            "done": waiting == 0,
            "smtp_server": asdict(server.stats()),  # since this process started it
        }

    @app.get("/newsletter/<int:batch_id>")
    def newsletter_batch(batch_id: int) -> dict[str, Any]:
        try:
            return batch_report(batch_id)
        except jobq.BatchNotFound as error:
            raise NotFound(str(error)) from None

    return app


def close_app(app: Flask, timeout: float = 10.0) -> None:
    """Stop the app's workers (unsent emails stay queued), its connections and SMTP server."""
    try:
        jobq_ext.close(app, timeout)  # closing the queue closes the handler's connections
    finally:
        smtp_server_of(app).stop()


def parse_newsletter() -> tuple[str, int]:
    """The request's subject and number of recipients, or a BadRequest saying what is wrong."""
    example = f'{{"subject": "{EXAMPLE_SUBJECT}", "recipients": 10000}}'
    if not request.get_data():
        raise BadRequest(f"missing JSON body; send one like {example}")
    if not request.is_json:
        raise BadRequest("send the body with Content-Type: application/json")
    try:
        body = json.loads(request.get_data())
    except ValueError as error:
        raise BadRequest(f"malformed JSON body ({error}); send one like {example}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object like {example}")
    unknown = sorted(set(body) - {"subject", "recipients"})
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(map(repr, unknown))}; send one like {example}"
        )
    subject = body.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        raise BadRequest("'subject' must be a non-empty string")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise BadRequest(
            f"'subject' must be at most {MAX_SUBJECT_LENGTH} characters, got {len(subject)}"
        )
    try:
        # The handler's own checks (line breaks, control characters...), so that a
        # subject it would refuse gets a 400 now rather than failing every job later.
        to = "user1@example.com"
        email.build_message(
            to, subject, text=message_text(to, subject), settings=mailer_of(current_app).settings
        )
    except ValueError as error:
        raise BadRequest(f"'subject' cannot be sent: {error}") from None
    count = body.get("recipients")
    if isinstance(count, bool) or not isinstance(count, int):
        raise BadRequest(
            f"'recipients' must be an integer from 1 to {MAX_RECIPIENTS}, got {count!r:.50}"
        )
    if not 1 <= count <= MAX_RECIPIENTS:
        raise BadRequest(f"'recipients' must be from 1 to {MAX_RECIPIENTS}, got {count}")
    return subject.strip(), count


# -- command line ----------------------------------------------------------------------


def shown_location(database: str | None) -> str:
    """``database`` as printed: a URL's password replaced by ``***``."""
    text = str(database)
    scheme, sep, rest = text.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo:
        return text
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def check_database(database: str | None, scratch: str) -> str:
    """Where ``--check`` keeps its jobs: a new SQLite file in ``scratch``, or for a
    Redis URL without ``prefix=``, that server under a prefix of its own (so that
    jobs of other runs in the same Redis database do not count)."""
    if not database:
        return os.path.join(scratch, "newsletter.db")
    if database.startswith(("redis://", "rediss://")) and "prefix=" not in database:
        prefix = f"jobq-newsletter-check-{uuid.uuid4().hex[:12]}:"
        return f"{database}{'&' if '?' in database else '?'}prefix={prefix}"
    return database


def check(count: int, database: str | None = None) -> bool:
    """Queue ``count`` emails through the test client and verify they all arrive once,
    in a new SQLite file, or in ``database`` (see :func:`check_database`)."""
    scratch = tempfile.TemporaryDirectory(prefix="jobq-newsletter-check-")
    given = database
    database = check_database(database, scratch.name)
    app = create_app({"JOBQ_DATABASE": database})
    client = app.test_client()
    server = smtp_server_of(app)
    failures: list[str] = []

    def expect(name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{f': {detail}' if detail else ''}", flush=True)
        if not ok:
            failures.append(name)

    try:
        print(
            f"local SMTP server on {server.host}:{server.port} (451 to the first try for "
            f"every {server.refuse_every}th recipient); jobs in {shown_location(database)}"
        )
        expect("GET / describes the demo", client.get("/").status_code == 200)
        bad = client.post("/newsletter", json={"subject": "hi", "recipients": MAX_RECIPIENTS + 1})
        expect(
            "POST /newsletter with too many recipients answers 400",
            bad.status_code == 400 and "recipients" in bad.get_json()["message"],
        )

        started = time.monotonic()
        reply = client.post("/newsletter", json={"subject": EXAMPLE_SUBJECT, "recipients": count})
        answered = time.monotonic() - started
        body = reply.get_json()
        expect(
            f"POST /newsletter queued {count} emails and answered 202 in {answered:.2f} s",
            reply.status_code == 202 and body.get("queued") == count,
            json.dumps(body),
        )

        deadline = started + 30.0 + count / 100  # generous: ~1,000/s is typical
        shown = started
        progress: dict[str, Any] = {}
        while time.monotonic() < deadline:
            progress = client.get("/newsletter/progress").get_json()
            if progress["done"]:
                break
            if time.monotonic() - shown >= 1.0:
                shown = time.monotonic()
                print(
                    f"  ... {progress['jobs']['completed']} sent, "
                    f"{progress['jobs']['pending']} waiting, "
                    f"{progress['smtp_server']['refused_temporarily']} refused with 451"
                )
            time.sleep(0.25)  # each look counts every job: do not steal the workers' time
        elapsed = time.monotonic() - started
        jobs = progress["jobs"]
        expect("every job finished in time", progress["done"], f"{elapsed:.1f} s")
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:  # the batch callback runs after the last email
            report = client.get(body["report"]).get_json()
            if report["report"] is not None:
                break
            time.sleep(0.05)
        expect(
            "the batch callback reported once every email had ended",
            report.get("report") == f"{count:,} sent, 0 failed",
            json.dumps(report),
        )
        expect(
            f"all {count} jobs completed, none failed",
            jobs["completed"] == count and jobs["failed"] == 0,
            json.dumps(jobs),
        )

        deliveries = server.deliveries()
        recipients = [delivery.recipient for delivery in deliveries]
        expected = {f"user{number}@example.com" for number in range(1, count + 1)}
        expect(
            f"the SMTP server received exactly {count} messages, one per recipient",
            len(recipients) == count and set(recipients) == expected,
            f"{len(recipients)} messages, {len(set(recipients))} distinct recipients",
        )
        expect(
            "every message has the subject", all(d.subject == EXAMPLE_SUBJECT for d in deliveries)
        )
        refused = server.refused_recipients()
        expected_refused = count // server.refuse_every
        expect(
            f"{expected_refused} deliveries refused with 451 were retried and delivered",
            len(refused) == expected_refused and refused <= set(recipients),
            f"{len(refused)} refused",
        )
        connections = mailer_of(app).connections_opened
        expect(
            "SMTP connections were reused",
            connections <= CONCURRENCY + expected_refused,
            f"{connections} connections for {count} messages with {CONCURRENCY} worker "
            f"threads (the server saw {server.stats().connections})",
        )
        monitor = client.get("/jobq/stats")
        expect("the monitor at /jobq answers a local request", monitor.status_code == 200)
        forbidden = client.get("/jobq/stats", environ_base={"REMOTE_ADDR": "192.0.2.1"})
        expect("the monitor refuses a remote one", forbidden.status_code == 403)

        result = {
            "queued": count,
            "delivered": len(recipients),
            "distinct_recipients": len(set(recipients)),
            "refused_451": len(refused),
            "failed": jobs["failed"],
            "report": report.get("report"),
            "smtp_connections": connections,
            "seconds": round(elapsed, 2),
            "per_second": round(count / elapsed),
        }
        print(
            f"delivered {len(recipients)} emails in {elapsed:.1f} s "
            f"({count / elapsed:,.0f}/s), {len(refused)} after a 451 and a retry"
        )
        print(f"result: {json.dumps(result)}")
    finally:
        if given and database != given:  # our own Redis prefix: leave nothing behind
            jobq_ext.state(app).queue.purge(older_than=0)
        close_app(app)
        scratch.cleanup()
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return not failures


def serve(host: str, port: int, database: str | None = None) -> None:
    app = create_app({"JOBQ_DATABASE": database} if database else None)
    server = smtp_server_of(app)
    base = f"http://{host}:{port}"
    body = json.dumps({"subject": EXAMPLE_SUBJECT, "recipients": MAX_RECIPIENTS})
    print(
        f"jobq newsletter demo on {base}; local SMTP server on {server.host}:{server.port}; "
        f"jobs in {shown_location(jobq_ext.state(app).settings.database)}. Try:\n"
    )
    print(f"  curl -s {base}/")
    print(f"  curl -s -X POST {base}/newsletter -H 'Content-Type: application/json' -d '{body}'")
    print(f"  curl -s {base}/newsletter/progress")
    print(f"  curl -s {base}/jobq/stats")
    print(f"and open {base}/jobq/ in a browser for the dashboard.\n", flush=True)
    try:
        # Workers would start on the first request; start them now so that emails
        # left queued by an earlier run are sent at once.
        jobq_ext.start_workers(app)
        # No reloader: it would run this module twice, starting two SMTP servers.
        app.run(host=host, port=port, use_reloader=False)  # returns on Ctrl-C
    finally:
        print(
            "stopping: running jobs finish, unsent emails stay queued for the next start",
            flush=True,
        )
        close_app(app)


def main() -> int:
    parser = argparse.ArgumentParser(description="jobq's newsletter demo.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="queue emails with Flask's test client, wait for them, verify, exit",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=MAX_RECIPIENTS,
        help=f"emails queued by --check (1 to {MAX_RECIPIENTS}, default {MAX_RECIPIENTS})",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("JOBQ_DATABASE"),
        help="the job queue: a redis:// or postgresql:// URL, or a SQLite path (default: "
        "JOBQ_DATABASE from the environment, else instance/newsletter.db; --check: a new "
        "temporary SQLite file)",
    )
    args = parser.parse_args()
    if not 1 <= args.count <= MAX_RECIPIENTS:
        parser.error(f"--count must be from 1 to {MAX_RECIPIENTS}")
    if args.check:
        return 0 if check(args.count, args.db) else 1
    serve(args.host, args.port, args.db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
