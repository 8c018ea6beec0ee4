"""The ready-made handlers and recurring schedules configured through the Flask
app: JOBQ_EMAIL, JOBQ_IMAGE and JOBQ_SCHEDULES, with a real SMTP server and real
images."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image

import jobq
from flask_jobq import JobQ, state_for
from flask_jobq.handlers import deliver_webhook, process_image, send_email
from jobq.handlers.webhook import verify
from tests.helpers import AppFactory, eventually
from tests.integration.handlers._smtp import HOST, SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


def wait_done(app: Flask, job_id: int) -> jobq.Job:
    queue = state_for(app).queue
    eventually(lambda: queue.get(job_id).status.is_final)
    return queue.get(job_id)


def test_an_email_enqueued_in_a_request_is_delivered(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = make_app(
        JOBQ_EMAIL={
            "host": HOST,
            "port": smtp.port,
            "timeout": 5.0,
            "default_sender": "app@example.com",
            "max_attempts": 2,
        },
        TESTING=False,  # workers start by themselves on the first request
    )

    @app.post("/welcome")
    def welcome() -> dict[str, int]:
        return {
            "id": send_email.enqueue(to="ada@example.com", subject="Welcome", text="Hello Ada").id
        }

    with app.test_client() as client:
        job_id = client.post("/welcome").get_json()["id"]
    job = wait_done(app, job_id)
    assert job.status is jobq.JobStatus.COMPLETED, job.error
    assert job.max_attempts == 2  # the handler's settings chose the job options
    [message] = smtp.received
    assert message.rcpt_tos == ("ada@example.com",)
    assert message.parsed()["Subject"] == "Welcome"


def test_a_handler_task_can_be_submitted_by_jobq_submit_with_the_apps_settings(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = make_app(
        JOBQ_EMAIL={
            "host": HOST,
            "port": smtp.port,
            "timeout": 5.0,
            "default_sender": "app@example.com",
            "max_attempts": 2,
        },
        TESTING=False,  # workers start by themselves on the first request
    )

    @app.post("/hi")
    def hi() -> dict[str, int]:
        return {"id": jobq.submit(send_email, to="ada@example.com", subject="Hi", text="x").id}

    with app.test_client() as client:
        job_id = client.post("/hi").get_json()["id"]
    job = wait_done(app, job_id)
    assert job.status is jobq.JobStatus.COMPLETED, job.error
    assert job.max_attempts == 2  # the app's handler settings, not made-up ones


def test_a_handler_the_app_did_not_configure_says_which_key_to_set(make_app: AppFactory) -> None:
    app = make_app()
    with app.app_context(), pytest.raises(jobq.ConfigurationError, match="JOBQ_EMAIL"):
        send_email.enqueue(to="ada@example.com", subject="Hi", text="x")


def test_bad_handler_settings_stop_init_app_naming_the_setting(tmp_path: Path, ext: JobQ) -> None:
    app = Flask("bad", instance_path=str(tmp_path / "instance"))
    app.config.update(JOBQ_EMAIL={"hots": "smtp.example.com"})
    with pytest.raises(jobq.ConfigurationError, match=r"JOBQ_EMAIL.*'hots'"):
        ext.init_app(app)


def test_images_are_processed_with_the_app_settings(make_app: AppFactory, tmp_path: Path) -> None:
    uploads, media = tmp_path / "uploads", tmp_path / "media"
    uploads.mkdir()
    Image.new("RGB", (640, 480), "red").save(uploads / "photo.jpg")
    app = make_app(JOBQ_IMAGE={"input_dirs": [str(uploads)], "output_dir": str(media)})
    with app.app_context():
        job = process_image.enqueue("photo.jpg", [{"path": "thumb.webp", "thumbnail": [64, 64]}])
    state_for(app).start_workers()
    assert wait_done(app, job.id).status is jobq.JobStatus.COMPLETED
    with Image.open(media / "thumb.webp") as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (64, 48))


def test_a_signed_webhook_is_delivered_with_the_app_settings(make_app: AppFactory) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None: ...

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    secret = "whsec_" + base64.b64encode(b"s" * 24).decode()
    try:
        app = make_app(JOBQ_WEBHOOK={"secret": secret, "allow_hosts": ["127.0.0.1"]})
        url = f"http://127.0.0.1:{server.server_port}/hooks"
        with app.app_context():
            job = deliver_webhook.enqueue(url, {"order": 7}, event_type="order.paid")
        state_for(app).start_workers()
        assert wait_done(app, job.id).status is jobq.JobStatus.COMPLETED
    finally:
        server.shutdown()
        server.server_close()
    [(headers, body)] = received
    assert verify(secret, headers, body)["data"] == {"order": 7}


def test_schedules_from_the_config_are_stored_at_first_use_and_fire_once_workers_start(
    make_app: AppFactory, ext: JobQ
) -> None:
    ran: list[str] = []

    @ext.task("tick")
    def tick(label: str) -> None:
        ran.append(label)

    app = make_app(JOBQ_SCHEDULES={"ticker": {"task": "tick", "every": 1, "args": ["hi"]}})
    queue = state_for(app).queue
    [stored] = queue.schedules()  # stored when the queue opened, before any worker
    assert (stored.name, stored.last_fire_at) == ("ticker", None)
    state_for(app).start_workers()
    eventually(lambda: bool(ran))
    [info] = queue.schedules()
    assert (info.name, info.task, info.every, list(info.args)) == ("ticker", "tick", 1, ["hi"])
    assert ran[0] == "hi"


@pytest.mark.parametrize(
    ("schedules", "message"),
    [
        ({"x": "every minute"}, "must be a mapping with a 'task'"),
        ({"x": {"task": "t", "every": 60, "often": True}}, "unknown setting"),
        (["x"], "must map schedule names"),
    ],
)
def test_bad_schedule_config_is_refused(
    tmp_path: Path, ext: JobQ, schedules: object, message: str
) -> None:
    app = Flask("bad", instance_path=str(tmp_path / "instance"))
    app.config.update(JOBQ_SCHEDULES=schedules)
    with pytest.raises((TypeError, ValueError), match=message):
        ext.init_app(app)
