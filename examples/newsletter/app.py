"""jobq's newsletter demo: one request queues 10,000 emails; the app's workers send them.

``POST /newsletter`` stores one durable job per recipient in a single
transaction and answers 202 at once. The worker threads that flask_jobq starts
in the serving process deliver them with ``smtplib`` to a local SMTP server
(aiosmtpd, started by this example on a free port of 127.0.0.1, see
local_smtp.py). That server answers ``451 try again later`` to the first
attempt for every 500th recipient, so some deliveries are retried with backoff.
Each worker thread keeps one SMTP connection open and reuses it, reconnecting
after an error. ``GET /newsletter/progress`` shows the queue's counts next to
what the SMTP server received, and the extension's JSON monitor is mounted at
``/jobq``, open to requests from 127.0.0.1 only.

    python examples/newsletter/app.py                  # serve on http://127.0.0.1:5000
    python examples/newsletter/app.py --check          # queue 10,000, wait, verify, exit 0/1
    python examples/newsletter/app.py --check --count 2000

The job queue lives in ``instance/newsletter.db`` next to this file; stop the app
while emails wait and start it again: they are still queued and get sent.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, jsonify, request, url_for
from local_smtp import SmtpServer, start_smtp_server
from werkzeug.exceptions import BadRequest, HTTPException

import jobq
from flask_jobq import JobQ, signals

HERE = Path(__file__).resolve().parent
EXTENSION_KEY = "newsletter"
QUEUE = "newsletter"
TASK_NAME = "newsletter.send_email"
SENDER = "newsletter@example.com"
MAX_RECIPIENTS = 10_000
MAX_SUBJECT_LENGTH = 200
CONCURRENCY = 4  # worker threads, hence SMTP connections, per serving process
MAX_ATTEMPTS = 5
# Temporary refusals (4xx) are retried after 0.25-0.5 s, then 0.5-1 s, ... at most 10 s.
RETRY_BACKOFF = jobq.backoff.exponential(base=0.5, cap=10.0)
UNREACHABLE_DELAY = 5.0  # seconds before trying again when the server cannot be reached
SMTP_TIMEOUT = 10.0
TASK_TIMEOUT = 30.0
REFUSE_EVERY = 500  # the local server answers 451 to the first try for every 500th recipient
EXAMPLE_SUBJECT = "jobq weekly #1"


class TemporaryDeliveryError(Exception):
    """The SMTP server refused a message for now (4xx): the job is retried with backoff."""


# -- SMTP connections -----------------------------------------------------------------


class Mailer:
    """Sends messages over one SMTP connection per thread, kept open between messages.

    A connection is dropped after any error that may have left it in an unknown
    state, and the next message opens a new one. A kept connection that the
    server closed meanwhile is replaced once, before anything was sent on it.
    :meth:`close` closes every connection this mailer opened, in any thread.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[smtplib.SMTP] = set()
        self.connections_opened = 0

    def send(self, message: EmailMessage) -> None:
        """Send ``message``; smtplib's exceptions (and OSError) propagate."""
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if smtp is not None:
            try:
                smtp.send_message(message)
                return
            except smtplib.SMTPServerDisconnected:
                self._drop(smtp)  # closed while idle: nothing was sent, so try a new one
            except BaseException as error:
                self._after_error(smtp, error)
                raise
        smtp = self._connect()
        try:
            smtp.send_message(message)
        except BaseException as error:
            self._after_error(smtp, error)
            raise

    def close(self) -> None:
        """Say QUIT on every connection still open (call once the workers stopped)."""
        with self._lock:
            connections, self._open = list(self._open), set()
        for smtp in connections:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        with self._lock:
            self._open.add(smtp)
            self.connections_opened += 1
        self._local.smtp = smtp
        return smtp

    def _after_error(self, smtp: smtplib.SMTP, error: BaseException) -> None:
        # smtplib sends RSET after a refused sender, recipient or message: the
        # connection stays usable, unless the server said it is closing it (421).
        refused = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                   smtplib.SMTPDataError)
        if isinstance(error, refused) and _reply_of(error)[0] != 421:
            return
        self._drop(smtp)

    def _drop(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._open.discard(smtp)
        if getattr(self._local, "smtp", None) is smtp:
            self._local.smtp = None
        smtp.close()


def _reply_of(error: smtplib.SMTPException) -> tuple[int, str]:
    """The SMTP reply code and text behind a refusal."""
    reply: tuple[int, bytes | str]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        reply = next(iter(error.recipients.values()))
    elif isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_code, error.smtp_error
    else:
        return 0, str(error)
    code, text = reply
    return code, text.decode(errors="replace") if isinstance(text, bytes) else text


# -- the app ---------------------------------------------------------------------------


@dataclass
class Newsletter:
    """What the example keeps per app besides jobq: the SMTP server and the mailer."""

    smtp_server: SmtpServer
    mailer: Mailer


def newsletter_of(app: Flask) -> Newsletter:
    newsletter: Newsletter = app.extensions[EXTENSION_KEY]
    return newsletter


jobq_ext = JobQ()


@jobq_ext.task(TASK_NAME, max_attempts=MAX_ATTEMPTS, backoff=RETRY_BACKOFF, queue=QUEUE,
               timeout=TASK_TIMEOUT)
def send_email(recipient: str, subject: str) -> None:
    """Send one newsletter email (runs in a worker thread, inside the app's context)."""
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(
        f"Hello {recipient.split('@')[0]},\n\n"
        f"this is {subject!r}, sent to you by a jobq worker thread.\n\n"
        "-- \nthe jobq newsletter demo\n"
    )
    try:
        newsletter_of(current_app).mailer.send(message)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as error:
        code, text = _reply_of(error)
        if 400 <= code < 500:
            # Counts as an attempt: retried with RETRY_BACKOFF, failed after MAX_ATTEMPTS.
            raise TemporaryDeliveryError(f"{recipient}: {code} {text}") from error
        raise jobq.Fail(f"{recipient}: refused for good: {code} {text}") from error
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError,
            TimeoutError) as error:
        # The server is down or unreachable: wait and try again without using up an
        # attempt, so a mail server restart does not fail thousands of emails.
        reason = f"SMTP server unreachable: {error}"
        raise jobq.Retry(delay=UNREACHABLE_DELAY, reason=reason) from error


@signals.worker_stopped.connect
def _close_connections(app: Flask, **_: Any) -> None:
    # The pool's threads are done with their connections: close them now rather
    # than leave them open until the app is closed.
    newsletter = app.extensions.get(EXTENSION_KEY)
    if isinstance(newsletter, Newsletter):
        newsletter.mailer.close()


def create_app(
    test_config: dict[str, Any] | None = None,
    *,
    refuse_every: int = REFUSE_EVERY,
    reject_every: int = 0,
) -> Flask:
    """Build the app and start its local SMTP server; stop both with :func:`close_app`.

    ``test_config`` overrides the configuration (e.g. ``JOBQ_DATABASE``, a path
    relative to the instance folder or absolute). The SMTP server answers 451 to
    the first attempt for every ``refuse_every``-th recipient and 550 to every
    ``reject_every``-th one (0: never).
    """
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    app.config.update(
        JOBQ_DATABASE="newsletter.db",  # in the instance folder
        JOBQ_CONCURRENCY=CONCURRENCY,
        # The monitor at /jobq is closed unless we say who may use it: local requests.
        JOBQ_MONITOR_AUTH=lambda: request.remote_addr == "127.0.0.1",
    )
    app.config.update(test_config or {})
    server = start_smtp_server(refuse_every=refuse_every, reject_every=reject_every)
    try:
        app.extensions[EXTENSION_KEY] = Newsletter(server, Mailer(server.host, server.port))
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
                f"{CONCURRENCY} worker threads send them with smtplib, each over its own "
                f"reused connection, to a local SMTP server on {server.host}:{server.port} "
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
                "GET /jobq/stats": "jobq's monitor (also /jobq/jobs?status=failed, /jobq/running); "
                                   "allowed from 127.0.0.1 only",
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
        ids = send_email.enqueue_many(
            [(f"user{number}@example.com", subject) for number in range(1, count + 1)]
        )
        progress = url_for("progress")
        return (
            {
                "queued": len(ids),
                "subject": subject,
                "job_ids": [ids[0], ids[-1]],
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

    return app


def close_app(app: Flask, timeout: float = 10.0) -> None:
    """Stop the app's workers (unsent emails stay queued), its connections and SMTP server."""
    newsletter = newsletter_of(app)
    try:
        jobq_ext.close(app, timeout)
    finally:
        newsletter.mailer.close()
        newsletter.smtp_server.stop()


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
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; send one like "
                         f"{example}")
    subject = body.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        raise BadRequest("'subject' must be a non-empty string")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise BadRequest(f"'subject' must be at most {MAX_SUBJECT_LENGTH} characters, "
                         f"got {len(subject)}")
    if any(ord(char) < 32 or ord(char) == 127 for char in subject):
        raise BadRequest("'subject' must not contain line breaks or control characters")
    count = body.get("recipients")
    if isinstance(count, bool) or not isinstance(count, int):
        raise BadRequest(f"'recipients' must be an integer from 1 to {MAX_RECIPIENTS}, "
                         f"got {count!r:.50}")
    if not 1 <= count <= MAX_RECIPIENTS:
        raise BadRequest(f"'recipients' must be from 1 to {MAX_RECIPIENTS}, got {count}")
    return subject.strip(), count


# -- command line ----------------------------------------------------------------------


def check(count: int) -> bool:
    """Queue ``count`` emails through the test client and verify they all arrive once."""
    scratch = tempfile.TemporaryDirectory(prefix="jobq-newsletter-check-")
    app = create_app({"JOBQ_DATABASE": os.path.join(scratch.name, "newsletter.db")})
    client = app.test_client()
    server = newsletter_of(app).smtp_server
    failures: list[str] = []

    def expect(name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{f': {detail}' if detail else ''}", flush=True)
        if not ok:
            failures.append(name)

    try:
        print(f"local SMTP server on {server.host}:{server.port} (451 to the first try for "
              f"every {server.refuse_every}th recipient)")
        expect("GET / describes the demo", client.get("/").status_code == 200)
        bad = client.post("/newsletter", json={"subject": "hi", "recipients": MAX_RECIPIENTS + 1})
        expect("POST /newsletter with too many recipients answers 400",
               bad.status_code == 400 and "recipients" in bad.get_json()["message"])

        started = time.monotonic()
        reply = client.post("/newsletter", json={"subject": EXAMPLE_SUBJECT, "recipients": count})
        answered = time.monotonic() - started
        body = reply.get_json()
        expect(f"POST /newsletter queued {count} emails and answered 202 in {answered:.2f} s",
               reply.status_code == 202 and body.get("queued") == count, json.dumps(body))

        deadline = started + 30.0 + count / 100  # generous: ~1,000/s is typical
        shown = started
        progress: dict[str, Any] = {}
        while time.monotonic() < deadline:
            progress = client.get("/newsletter/progress").get_json()
            if progress["done"]:
                break
            if time.monotonic() - shown >= 1.0:
                shown = time.monotonic()
                print(f"  ... {progress['jobs']['completed']} sent, "
                      f"{progress['jobs']['pending']} waiting, "
                      f"{progress['smtp_server']['refused_temporarily']} refused with 451")
            time.sleep(0.25)  # each look counts every job: do not steal the workers' time
        elapsed = time.monotonic() - started
        jobs = progress["jobs"]
        expect("every job finished in time", progress["done"], f"{elapsed:.1f} s")
        expect(f"all {count} jobs completed, none failed",
               jobs["completed"] == count and jobs["failed"] == 0, json.dumps(jobs))

        deliveries = server.deliveries()
        recipients = [delivery.recipient for delivery in deliveries]
        expected = {f"user{number}@example.com" for number in range(1, count + 1)}
        expect(f"the SMTP server received exactly {count} messages, one per recipient",
               len(recipients) == count and set(recipients) == expected,
               f"{len(recipients)} messages, {len(set(recipients))} distinct recipients")
        expect("every message has the subject", all(d.subject == EXAMPLE_SUBJECT
                                                     for d in deliveries))
        refused = server.refused_recipients()
        expected_refused = count // server.refuse_every
        expect(f"{expected_refused} deliveries refused with 451 were retried and delivered",
               len(refused) == expected_refused and refused <= set(recipients),
               f"{len(refused)} refused")
        connections = newsletter_of(app).mailer.connections_opened
        expect("SMTP connections were reused", connections <= CONCURRENCY + expected_refused,
               f"{connections} connections for {count} messages")
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
            "smtp_connections": connections,
            "seconds": round(elapsed, 2),
            "per_second": round(count / elapsed),
        }
        print(f"delivered {len(recipients)} emails in {elapsed:.1f} s "
              f"({count / elapsed:,.0f}/s), {len(refused)} after a 451 and a retry")
        print(f"result: {json.dumps(result)}")
    finally:
        close_app(app)
        scratch.cleanup()
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return not failures


def serve(host: str, port: int) -> None:
    app = create_app()
    server = newsletter_of(app).smtp_server
    base = f"http://{host}:{port}"
    body = json.dumps({"subject": EXAMPLE_SUBJECT, "recipients": MAX_RECIPIENTS})
    print(f"jobq newsletter demo on {base}; local SMTP server on {server.host}:{server.port}; "
          f"jobs in {Path(app.instance_path, app.config['JOBQ_DATABASE'])}. Try:\n")
    print(f"  curl -s {base}/")
    print(f"  curl -s -X POST {base}/newsletter -H 'Content-Type: application/json' "
          f"-d '{body}'")
    print(f"  curl -s {base}/newsletter/progress")
    print(f"  curl -s {base}/jobq/stats\n", flush=True)
    try:
        # Workers would start on the first request; start them now so that emails
        # left queued by an earlier run are sent at once.
        jobq_ext.start_workers(app)
        # No reloader: it would run this module twice, starting two SMTP servers.
        app.run(host=host, port=port, use_reloader=False)  # returns on Ctrl-C
    finally:
        print("stopping: running jobs finish, unsent emails stay queued for the next start",
              flush=True)
        close_app(app)


def main() -> int:
    parser = argparse.ArgumentParser(description="jobq's newsletter demo.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--check", action="store_true",
                        help="queue emails with Flask's test client, wait for them, verify, exit")
    parser.add_argument("--count", type=int, default=MAX_RECIPIENTS,
                        help=f"emails queued by --check (1 to {MAX_RECIPIENTS}, default "
                             f"{MAX_RECIPIENTS})")
    args = parser.parse_args()
    if not 1 <= args.count <= MAX_RECIPIENTS:
        parser.error(f"--count must be from 1 to {MAX_RECIPIENTS}")
    if args.check:
        return 0 if check(args.count) else 1
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
