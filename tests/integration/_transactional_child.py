"""A real process for tests/integration/test_transactional_kill.py:
``python _transactional_child.py <database> <seed>``.

It plays a web app: in a loop, one SQLAlchemy Session transaction writes a user
row and enqueues that user's welcome job through
:meth:`jobq.DurableQueue.in_transaction`, then commits (or, one time in four,
rolls back). Before and after each step it prints a line, ``<step> <n>``
(``begin``, ``row``, ``job``, ``commit``, ``committed``, ``rolled-back``),
flushed, so that the test can SIGKILL it right after any of them. It never ends
on its own.
"""

from __future__ import annotations

import random
import sys

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

import jobq


def engine_url(database: str) -> str:
    if database.startswith("postgresql://"):
        return database.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{database}"


def say(step: str, number: int) -> None:
    sys.stdout.write(f"{step} {number}\n")
    sys.stdout.flush()


def main(database: str, seed: int) -> None:
    queue = jobq.DurableQueue(database, driver="sqlite3")
    welcome = queue.task("welcome")(lambda name: None)
    engine = create_engine(engine_url(database))
    chance = random.Random(seed)
    number = 0
    say("ready", number)
    while True:
        number += 1
        name = f"user-{seed}-{number}"
        with Session(engine) as session:
            say("begin", number)
            session.execute(text("INSERT INTO users (name) VALUES (:name)"), {"name": name})
            say("row", number)
            with queue.in_transaction(session):
                welcome.enqueue(name)
            say("job", number)
            if chance.random() < 0.25:
                session.rollback()
                say("rolled-back", number)
                continue
            say("commit", number)
            session.commit()
            say("committed", number)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
