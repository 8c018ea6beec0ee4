"""A real process for tests/integration/test_reliability.py's disk trouble:
``python _reliability_child.py '<json>'``, answering in ``result-<name>.json``.

Modes (the JSON's ``mode``):

- ``fill``: with ``RLIMIT_FSIZE`` set to ``limit`` bytes and SIGXFSZ ignored
  (a full disk, as the process sees it), enqueue jobs one by one until one
  fails; report the ids accepted and the error.
- ``readonly``: (as the user ``nobody`` when ``as_nobody``, since root ignores
  file permissions) open the queue and enqueue one job; report what happened.
- ``work``: enqueue ``count`` jobs, run every due job inline, report the counts.
- ``peek``: (as ``nobody`` when ``as_nobody``) read each of ``files`` as a
  curious local user would, and the job table through SQLite; report what it got.

Every wait here is bounded; any uncaught exception exits non-zero with its traceback.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import jobq


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "is_storage_error": isinstance(exc, jobq.StorageError),
        "message": str(exc),
        "cause": repr(exc.__cause__),
    }


def _open(config: dict[str, Any]) -> jobq.DurableQueue:
    queue = jobq.DurableQueue(config["db"])
    queue.task("pad", max_attempts=1)(lambda text: len(text))
    return queue


def fill(config: dict[str, Any]) -> dict[str, Any]:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    limit = int(config["limit"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    queue = _open(config)
    task = queue.get_task("pad")
    accepted: list[int] = []
    error = None
    for n in range(int(config["max_jobs"])):
        try:
            accepted.append(task.enqueue(f"{n:06d}" + "x" * 2000).id)
        except Exception as exc:
            error = _error(exc)
            break
    queue.close()
    return {"accepted": accepted, "error": error}


def _become_nobody() -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


def readonly(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("as_nobody"):
        _become_nobody()
    try:
        queue = _open(config)
    except Exception as exc:
        return {"stage": "open", "error": _error(exc), "uid": os.geteuid()}
    try:
        queue.enqueue("pad", "x")
    except Exception as exc:
        return {"stage": "enqueue", "error": _error(exc), "uid": os.geteuid()}
    finally:
        queue.close()
    return {"stage": "done", "error": None, "uid": os.geteuid()}


def work(config: dict[str, Any]) -> dict[str, Any]:
    queue = _open(config)
    task = queue.get_task("pad")
    ids = [task.enqueue("y").id for _ in range(int(config["count"]))]
    ran = queue.run_until_empty(max_jobs=10 * len(ids))
    done = [i for i in ids if queue.get(i).status is jobq.JobStatus.COMPLETED]
    queue.close()
    return {"ids": ids, "ran": ran, "completed": len(done)}


def peek(config: dict[str, Any]) -> dict[str, Any]:
    import sqlite3

    if config.get("as_nobody"):
        _become_nobody()
    got: dict[str, str] = {}
    for name in config["files"]:
        try:
            with open(name, "rb") as file:
                got[name] = f"read {len(file.read())} bytes"
        except OSError as exc:
            got[name] = type(exc).__name__
    try:
        conn = sqlite3.connect(f"file:{config['files'][0]}?mode=ro", uri=True)
        try:
            got["payloads"] = repr(conn.execute("SELECT payload FROM jobs").fetchall())
        finally:
            conn.close()
    except sqlite3.Error as exc:
        got["payloads"] = f"{type(exc).__name__}: {exc}"
    return {"uid": os.geteuid(), "got": got}


MODES = {"fill": fill, "readonly": readonly, "work": work, "peek": peek}


def main() -> int:
    config = json.loads(sys.argv[1])
    result = MODES[config["mode"]](config)
    path = Path(config["out"])
    path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
