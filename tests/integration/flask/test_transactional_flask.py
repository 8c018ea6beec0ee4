"""A Flask-SQLAlchemy app that creates a user and enqueues the welcome email in
``db.session`` (``JobQ.in_transaction``): a request that fails after the enqueue
rolls back both; the others' jobs run once, in the worker pool, and find their
user. On SQLite (the app's tables in the queue's file) and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

import jobq
from flask_jobq import JobQ, state_for
from tests.helpers import both_backends, eventually


def engine_url(database: str) -> str:
    if database.startswith("postgresql://"):
        return database.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{database}"


class Signups:
    """The app under test, and what its welcome task saw."""

    def __init__(self, database: str, tmp_path: Path) -> None:
        db = self.db = SQLAlchemy()
        ext = self.ext = JobQ()
        self.sent: list[str | None] = []
        self.sending = threading.Lock()

        class User(db.Model):  # type: ignore[name-defined,misc]
            id: Mapped[int] = mapped_column(primary_key=True)
            name: Mapped[str] = mapped_column(unique=True)

        self.User = User

        @ext.task("welcome")
        def welcome(user_id: int) -> None:
            user = db.session.get(User, user_id)  # runs in an app context
            with self.sending:
                self.sent.append(None if user is None else user.name)

        app = self.app = Flask("signups", instance_path=str(tmp_path / "instance"))
        app.config.update(
            TESTING=True,
            SQLALCHEMY_DATABASE_URI=engine_url(database),
            JOBQ_DATABASE=database,
            JOBQ_DRIVER="sqlite3",  # SQLAlchemy's SQLite library
            JOBQ_CONCURRENCY=2,
        )
        ext.init_app(app)
        db.init_app(app)
        with app.app_context():
            db.create_all()

        @app.post("/signup")
        def signup() -> dict[str, Any]:
            name = request.get_json()["name"]
            with ext.in_transaction(db.session):
                user = User(name=name)
                db.session.add(user)
                db.session.flush()  # the id, for the job
                welcome.enqueue(user.id)
                if name.startswith("boom"):
                    raise RuntimeError("the payment provider is down")
            db.session.commit()
            return {"id": user.id}

        @app.errorhandler(RuntimeError)
        def failed(error: RuntimeError) -> tuple[dict[str, str], int]:
            db.session.rollback()
            return {"error": str(error)}, 500

    def users(self) -> list[str]:
        with self.app.app_context():
            return sorted(user.name for user in self.db.session.query(self.User))

    def close(self) -> None:
        state_for(self.app).close(timeout=10)
        with self.app.app_context():
            self.db.engine.dispose()


@pytest.fixture
def signups(database: str, tmp_path: Path) -> Iterator[Signups]:
    made = Signups(database, tmp_path)
    yield made
    made.close()


@both_backends
def test_a_failed_signup_rolls_back_its_user_and_its_welcome_email(signups: Signups) -> None:
    client = signups.app.test_client()
    pool = signups.ext.start_workers(signups.app)
    assert client.post("/signup", json={"name": "ann"}).status_code == 200
    failed = client.post("/signup", json={"name": "boom"})
    assert failed.status_code == 500
    assert failed.get_json() == {"error": "the payment provider is down"}
    assert client.post("/signup", json={"name": "bea"}).status_code == 200
    queue = signups.ext.state(signups.app).queue
    eventually(lambda: len(signups.sent) == 2)
    eventually(lambda: all(j.status is jobq.JobStatus.COMPLETED for j in queue.list()))
    pool.stop(timeout=10)
    assert sorted(signups.sent) == ["ann", "bea"]  # once each, and each found its user
    assert signups.users() == ["ann", "bea"]
    assert len(queue.list()) == 2


@both_backends
def test_the_welcome_job_waits_for_the_commit_of_the_request(signups: Signups) -> None:
    app, db, queue = signups.app, signups.db, signups.ext.state(signups.app).queue
    with app.app_context():
        with signups.ext.in_transaction(db.session):
            user = signups.User(name="cy")
            db.session.add(user)
            db.session.flush()
            job = queue.enqueue("welcome", user.id)
        assert queue.storage.get(job.id) is None  # not committed: not there for workers
        assert not queue.storage.has_runnable(["default"], now=4e9)
        db.session.commit()
    assert queue.get(job.id).status is jobq.JobStatus.PENDING
    assert queue.run_until_empty() == 1
    assert signups.sent == ["cy"]
