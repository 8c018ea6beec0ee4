"""Set up a virtual environment and run jobq's demo, examples, docs or test suite.

    python3 dev.py demo                 # serve the example Flask app (Ctrl-C stops it)
    python3 dev.py run examples/x.py    # run any Python file with everything installed
    python3 dev.py docs [--serve]       # build the documentation site into site/ (or preview it)
    python3 dev.py test                 # ruff, mypy --strict, the strict docs build, pytest
    python3 dev.py test --fast          # the same, with the unit and contract tests not marked slow

Needs only Python 3.10+ with the standard library. Every command uses one
environment, ``.venv`` next to this file, with jobq installed with its ``dev``
extra (which holds every other extra); it is installed again only when
``setup.cfg`` or ``pyproject.toml`` change, whichever command runs first.
Extra arguments after ``test`` are passed to pytest, after ``run`` to the file;
pytest runs the tests in one process per core (at most four) unless they say
otherwise (``-n 0`` runs them in one).
``test`` checks the lint and the format with ruff (``ruff check``,
``ruff format --check``) and builds the site in strict mode (a broken link fails).

``demo`` and ``run`` stop quietly on Ctrl-C and pass SIGTERM on to the program,
exiting 0 when it stopped as asked and with its own status otherwise.

The tests are in four folders: ``tests/unit`` (one process, fake clocks),
``tests/contract`` (the storage contract on every backend), ``tests/integration``
(real threads, processes and servers) and ``tests/examples``. ``--fast`` runs
``tests/unit`` and ``tests/contract`` and deselects the tests marked ``slow``;
without it every test runs, as CI does.

The PostgreSQL tests use the server named by ``JOBQ_TEST_POSTGRES_URL``; when
that is unset and PostgreSQL's server programs are installed (Debian's
``postgresql`` package), ``test`` starts a throwaway server on 127.0.0.1 for
the run. Without either, those tests are skipped and say why. The Redis tests
likewise use ``JOBQ_TEST_REDIS_URL``, or a throwaway ``redis-server`` (Debian's
``redis-server`` package) without persistence, its files in a temporary folder.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


EXTRAS = "dev"
"""The one set of extras every command installs (``dev`` includes all the others)."""
STAMP = VENV / ".installed"
"""Holds the digest of the packaging files the environment was installed from."""


def run(*args: str | Path, cwd: str | Path = ROOT, quiet: bool = False) -> None:
    """Run a command, exiting with its status if it fails. ``quiet`` shows the command
    and its output only then."""
    if not quiet:
        print("+", " ".join(str(a) for a in args), flush=True)
    completed = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
    )
    if completed.returncode:
        if quiet:
            print("+", " ".join(str(a) for a in args), flush=True)
            sys.stdout.write(completed.stdout.decode(errors="replace"))
        sys.exit(completed.returncode)


def environment_digest() -> str:
    digest = hashlib.sha256(EXTRAS.encode())
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_env() -> None:
    """Create .venv and install jobq with every extra, unless already current."""
    if not PYTHON.exists():
        print(f"creating {VENV.name}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = environment_digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f".[{EXTRAS}]")
    STAMP.write_text(digest)


# Runs the file as `python FILE ARGS` would (same sys.argv, sys.path[0] and __main__),
# ending on Ctrl-C with status 130 instead of a KeyboardInterrupt traceback.
_QUIET_MAIN = """\
import os, runpy, sys
path = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(path))
try:
    runpy.run_path(path, run_name="__main__")
except KeyboardInterrupt:
    sys.exit(130)
"""


def run_program(path: str, args: list[str]) -> NoReturn:
    """Run the Python file ``path`` with the environment's interpreter until it ends.

    Ctrl-C reaches the program from the terminal (it is in our process group);
    SIGTERM sent to this process is passed on to it. Exits 0 when the program
    stopped after either, else with the program's own status."""
    child = subprocess.Popen([str(PYTHON), "-c", _QUIET_MAIN, path, *args])
    asked_to_stop: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        asked_to_stop.append(signum)
        if signum == signal.SIGTERM and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    status = child.wait()
    stopped_as_asked = (0, 130, 143, -signal.SIGINT, -signal.SIGTERM)
    if asked_to_stop and status in stopped_as_asked:
        sys.exit(0)
    sys.exit(status if status >= 0 else 128 - status)


def demo(args: list[str]) -> None:
    ensure_env()
    run_program("examples/newsletter/app.py", args)


def run_file(args: list[str]) -> None:
    if not args or args[0].startswith("-"):
        sys.exit(f"usage: python3 {Path(__file__).name} run FILE.py [args...]")
    ensure_env()
    run_program(args[0], args[1:])


def build_docs(site_dir: Path | None = None) -> None:
    """Build the site in strict mode: a broken link or anchor, or a reference that
    cannot be generated, fails."""
    os.environ["NO_MKDOCS_2_WARNING"] = "1"  # a notice about MkDocs' future, not about us
    target = ["--site-dir", str(site_dir)] if site_dir else []
    run(PYTHON, "-m", "mkdocs", "build", "--strict", "--quiet", *target)


def docs(args: list[str]) -> None:
    ensure_env()
    if "--serve" in args:
        os.environ["NO_MKDOCS_2_WARNING"] = "1"
        others = [a for a in args if a != "--serve"]
        serve = [str(PYTHON), "-m", "mkdocs", "serve", "--strict", *others]
        with contextlib.suppress(KeyboardInterrupt):  # mkdocs says goodbye itself
            subprocess.run(serve, cwd=ROOT)
        return
    build_docs()
    print(f"built the site into {ROOT / 'site'}; open site/index.html", flush=True)


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
            quiet=True,
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
            quiet=True,
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*as_postgres, str(programs / "pg_ctl"), "-D", data, "-m", "fast", "-s", "stop"],
                cwd=folder,
                stdout=subprocess.DEVNULL,
            )  # a folder the postgres user can enter
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str | None]:
    """Start a redis-server on 127.0.0.1 in a temporary folder for the tests, without
    persistence; yield its URL (None when redis-server is not installed), and stop
    it and remove the folder afterwards."""
    program = shutil.which("redis-server")
    if program is None:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="jobq-redis-")
    port = _free_port()
    options = ["--bind", "127.0.0.1", "--port", str(port), "--dir", folder, "--save", ""]
    options += ["--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log"]
    try:
        server = subprocess.Popen([program, *options], cwd=folder, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not _answers_ping(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    log = Path(folder, "redis.log")
                    sys.exit(
                        f"redis-server did not start:\n{log.read_text() if log.exists() else ''}"
                    )
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


FAST_TESTS = ["tests/unit", "tests/contract", "-m", "not slow"]
"""What ``test --fast`` hands pytest before the other arguments."""
PARALLEL = ["--numprocesses", "auto", "--maxprocesses", "4"]
"""pytest-xdist: one test process per core, at most four (most tests wait on
threads, processes and servers rather than compute)."""


def parallel(args: list[str]) -> list[str]:
    """``args`` with :data:`PARALLEL` in front, unless they choose for themselves
    (``-n``, ``--numprocesses``, ``-p no:xdist``)."""
    chosen = any(a in ("-n", "no:xdist") or a.startswith(("-n", "--numprocesses")) for a in args)
    return args if chosen else [*PARALLEL, *args]


def test(args: list[str]) -> None:
    if "--fast" in args:
        args = [*FAST_TESTS, *(a for a in args if a != "--fast")]
    args = parallel(args)
    ensure_env()
    run(PYTHON, "-m", "ruff", "check", ".")
    run(PYTHON, "-m", "ruff", "format", "--check", ".")
    run(PYTHON, "-m", "mypy", "--strict", "jobq", "flask_jobq")
    with tempfile.TemporaryDirectory(prefix="jobq-site-") as site:
        build_docs(Path(site))
    with contextlib.ExitStack() as servers:
        if not os.environ.get("JOBQ_TEST_POSTGRES_URL"):
            url = servers.enter_context(throwaway_postgres())
            if url is not None:
                os.environ["JOBQ_TEST_POSTGRES_URL"] = url
                print(f"PostgreSQL tests use a throwaway server at {url}", flush=True)
        if not os.environ.get("JOBQ_TEST_REDIS_URL"):
            url = servers.enter_context(throwaway_redis())
            if url is not None:
                os.environ["JOBQ_TEST_REDIS_URL"] = url
                print(f"Redis tests use a throwaway server at {url}", flush=True)
        completed = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)
    sys.exit(completed.returncode)


COMMANDS = {"demo": demo, "run": run_file, "docs": docs, "test": test}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 {Path(__file__).name} {{{'|'.join(COMMANDS)}}} [args...]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
