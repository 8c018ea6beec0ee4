"""Set up a virtual environment and run jobq's demo or its test suite.

    python3 dev.py demo         # install into .venv, then serve the example Flask app
    python3 dev.py test         # install into .venv, then ruff, mypy --strict and pytest
    python3 dev.py test --fast  # the same, with the unit and contract tests not marked slow

Needs only Python 3.10+ with the standard library. The environment lives in
``.venv`` next to this file and is reinstalled only when the packaging files
change. Extra arguments after ``test`` are passed to pytest. ``test`` checks the lint and the
format with ruff (``ruff check``, ``ruff format --check``).

The tests are in four folders: ``tests/unit`` (one process, fake clocks),
``tests/contract`` (the storage contract on every backend), ``tests/integration``
(real threads, processes and servers) and ``tests/examples``. ``--fast`` runs
``tests/unit`` and ``tests/contract`` and deselects the tests marked ``slow``;
without it every test runs, as CI does.

The PostgreSQL tests use the server named by ``JOBQ_TEST_POSTGRES_URL``; when
that is unset and PostgreSQL's server programs are installed (Debian's
``postgresql`` package), ``test`` starts a throwaway server on 127.0.0.1 for
the run. Without either, those tests are skipped and say why.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*args: str | Path, cwd: str | Path = ROOT) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    completed = subprocess.run([str(a) for a in args], cwd=cwd)
    if completed.returncode:
        sys.exit(completed.returncode)


def ensure_env(extras: str) -> None:
    """Create .venv and install jobq with ``extras`` unless already current."""
    if not PYTHON.exists():
        print(f"creating {VENV.name}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(extras.encode())
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    stamp = VENV / f".installed-{extras}"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")
    stamp.write_text(digest.hexdigest())


def demo(args: list[str]) -> None:
    ensure_env("all,examples")
    run(PYTHON, "examples/newsletter/app.py", *args)


def postgres_programs() -> Path | None:
    """The folder of PostgreSQL's initdb, pg_ctl and postgres, if installed."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.access(os.path.join(folder, p), os.X_OK) for p in ("initdb", "pg_ctl")):
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """Start a PostgreSQL server in a temporary folder for the tests; yield its URL
    (None when PostgreSQL is not installed), and remove it all afterwards."""
    programs = postgres_programs()
    if programs is None or (os.geteuid() == 0 and not _has_user("postgres")):
        yield None
        return
    folder = tempfile.mkdtemp(prefix="jobq-pg-")
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, user="postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = os.path.join(folder, "data")
    # fsync=off: a throwaway server; the crash tests kill clients, never the server.
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=300"
    )
    try:
        run(
            *as_postgres,
            programs / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
            cwd=folder,
        )
        run(
            *as_postgres,
            programs / "pg_ctl",
            "-D",
            data,
            "-l",
            os.path.join(folder, "log"),
            "-w",
            "-s",
            "-o",
            options,
            "start",
            cwd=folder,
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*as_postgres, str(programs / "pg_ctl"), "-D", data, "-m", "fast", "-s", "stop"],
                cwd=folder,
            )  # a folder the postgres user can enter
    finally:
        shutil.rmtree(folder, ignore_errors=True)


FAST_TESTS = ["tests/unit", "tests/contract", "-m", "not slow"]
"""What ``test --fast`` hands pytest before the other arguments."""


def test(args: list[str]) -> None:
    if "--fast" in args:
        args = [*FAST_TESTS, *(a for a in args if a != "--fast")]
    ensure_env("dev")
    run(PYTHON, "-m", "ruff", "check", ".")
    run(PYTHON, "-m", "ruff", "format", "--check", ".")
    run(PYTHON, "-m", "mypy", "--strict", "jobq", "flask_jobq")
    if os.environ.get("JOBQ_TEST_POSTGRES_URL"):
        run(PYTHON, "-m", "pytest", *args)
        return
    with throwaway_postgres() as url:
        if url is not None:
            os.environ["JOBQ_TEST_POSTGRES_URL"] = url
            print(f"PostgreSQL tests use a throwaway server at {url}", flush=True)
        completed = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)
    sys.exit(completed.returncode)


COMMANDS = {"demo": demo, "test": test}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 {Path(__file__).name} {{{'|'.join(COMMANDS)}}} [args...]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
