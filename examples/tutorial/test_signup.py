"""Step 6 of the tutorial (docs/tutorial.md): test the signup, then send its email for real.

python -m pytest test_signup.py     # from examples/tutorial/; needs pytest and aiosmtpd
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from step4_durable import create_app, jobq_ext

from jobq.testing import assert_enqueued


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on 127.0.0.1: its inbox and its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def app(smtp_server: tuple[Inbox, int]) -> Iterator[Flask]:
    # TESTING: a temporary job database and no worker threads; the test runs the jobs.
    app = create_app(
        {"TESTING": True, "SMTP": {"host": "127.0.0.1", "port": smtp_server[1], "security": "none"}}
    )
    yield app
    jobq_ext.close(app)


def test_signup_answers_at_once_and_queues_the_welcome_email(app: Flask) -> None:
    response = app.test_client().post("/signup", data={"email": "ada@example.com"})

    assert response.status_code == 202
    with app.app_context():
        assert_enqueued(
            jobq_ext.queue,
            "jobq.email.send",
            to="ada@example.com",
            subject="Welcome to Example",
            text="Thanks for signing up!",
        )


def test_the_welcome_email_reaches_the_smtp_server(
    app: Flask, smtp_server: tuple[Inbox, int]
) -> None:
    app.test_client().post("/signup", data={"email": "ada@example.com"})

    with app.app_context():
        assert jobq_ext.queue.run_until_empty() == 1  # one attempt ran, in this thread
    inbox, _ = smtp_server
    assert inbox.messages == [("welcome@example.com", ["ada@example.com"])]
