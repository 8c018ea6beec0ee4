"""How ``jobq`` finds the queue: ``--app MODULE[:NAME]`` imports the user's module
from the current directory, ``--db`` opens a database that must exist, and every
error says what was found and what to do.

The user's code is a real package written into a fresh project folder (the
README's ``myapp/tasks.py``); the worker runs as a real console-script process
started in that folder, as a user would start it.
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue, JobStatus
from jobq.cli import build_parser, main
from tests.helpers import started_process, wait_for

DEADLINE = 30.0  # real seconds any one step may take on a busy machine

TASKS = """
import jobq

queue = jobq.DurableQueue("instance/jobs.db")


@queue.task("add")
def add(a: int, b: int) -> int:
    return a + b


@queue.task("shout")
def shout(text: str) -> str:
    return text.upper()


@queue.periodic("0 3 * * *", name="digest")
def digest() -> None: ...
"""


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A fresh project folder, the current directory, with a package of a name of its
    own (so imports never meet another test's): ``(folder, package name)``."""
    package = f"myapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "tasks.py").write_text(textwrap.dedent(TASKS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command adds the folder
    yield tmp_path, package
    forget(package)


def forget(package: str) -> None:
    """Drop the package's modules, closing their queues: the next command imports them
    afresh, as a new process would (a command closes the queue it ran)."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        module = sys.modules.pop(name)
        for value in vars(module).values():
            if isinstance(value, DurableQueue):
                value.close()


def write(project: tuple[Path, str], module: str, text: str) -> str:
    """Write ``module`` (a name inside the project's package); return its dotted name."""
    folder, package = project
    (folder / package / f"{module}.py").write_text(textwrap.dedent(text))
    return f"{package}.{module}"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def invoke(*argv: str) -> Result:
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    for fragment in fragments:
        assert fragment in result.err, result.err
    return result.err


# -- --app ---------------------------------------------------------------------------------


def test_app_names_the_queue_or_finds_the_only_one(
    run: Callable[..., Result], project: tuple[Path, str]
) -> None:
    folder, package = project
    for app in (f"{package}.tasks:queue", f"{package}.tasks"):
        result = run("schedules", "--app", app, "--json")
        assert result.code == 0, result.err
        [digest] = json.loads(result.out)["schedules"]
        assert (digest["name"], digest["cron"]) == ("digest", "0 3 * * *")
        forget(package)
    assert (folder / "instance" / "jobs.db").is_file()  # opened as the code opens it


def test_schedules_declared_in_code_are_steered_before_any_worker(
    run: Callable[..., Result], project: tuple[Path, str]
) -> None:
    _, package = project
    app = f"{package}.tasks:queue"
    paused = run("pause-schedule", "digest", "--app", app)
    assert paused.code == 0, paused.err
    assert paused.out.startswith("schedule 'digest' paused")
    listed = run("schedules", "--db", "instance/jobs.db", "--json")
    assert json.loads(listed.out)["schedules"][0]["paused"] is True
    triggered = run("trigger-schedule", "digest", "--db", "instance/jobs.db")
    assert triggered.code == 0, triggered.err
    assert "triggered: job 1" in triggered.out


def test_a_module_without_a_queue_or_with_several_says_what_it_holds(
    run: Callable[..., Result], project: tuple[Path, str]
) -> None:
    none = write(project, "plain", "import os\nLIMIT = 3\n\ndef helper() -> None: ...\n")
    one_line_error(
        run("stats", "--app", none),
        f"module '{none}' (--app) defines no jobq.DurableQueue",
        "found: LIMIT (int), helper (function)",
        f"--app {none}:NAME",
    )
    several = write(
        project,
        "two",
        """
        import jobq
        jobs = jobq.DurableQueue("instance/a.db")
        mail = jobq.DurableQueue("instance/b.db")
        same = jobs

        @mail.task("send")
        def send() -> None: ...
        """,
    )
    one_line_error(
        run("worker", "--app", several),
        f"module '{several}' (--app) defines 2 DurableQueues",
        "jobs (DurableQueue on instance/a.db with no task)",
        "mail (DurableQueue on instance/b.db with tasks send)",
        f"e.g. --app {several}:jobs",
    )
    _, package = project
    one_line_error(
        run("stats", "--app", f"{package}.tasks:add"),
        f"{package}.tasks:add (--app) is a Task, not a jobq.DurableQueue",
        "found: queue (DurableQueue), add (Task), shout (Task), digest (Task)",
    )
    one_line_error(
        run("stats", "--app", f"{package}.tasks:queu"),
        f"module '{package}.tasks' has no 'queu'",
        "queue (DurableQueue)",
    )
    one_line_error(run("stats", "--app", f"{package}.tasks:"), "give MODULE:NAME")


def test_a_missing_module_is_one_line_naming_the_folder_searched(
    run: Callable[..., Result], project: tuple[Path, str]
) -> None:
    folder, package = project
    one_line_error(
        run("stats", "--app", f"{package}.taks:queue"),
        f"cannot import '{package}.taks' (--app): no module named '{package}.taks'",
        f"current directory ({folder})",
    )


def test_an_error_inside_the_users_module_shows_its_traceback_not_ours(
    run: Callable[..., Result], project: tuple[Path, str]
) -> None:
    broken = write(
        project,
        "broken",
        """
        import jobq

        def settings() -> dict[str, str]:
            return {"db": DATABSE_PATH}

        queue = jobq.DurableQueue(settings()["db"])
        """,
    )
    result = run("worker", "--app", f"{broken}:queue")
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert 'broken.py", line 7, in <module>' in result.err
    assert 'broken.py", line 5, in settings' in result.err
    assert "jobq/cli" not in result.err, result.err
    assert "importlib" not in result.err, result.err
    assert lines[-2] == "NameError: name 'DATABSE_PATH' is not defined"
    assert lines[-1] == (
        f"jobq: error: importing '{broken}' (--app) failed with NameError: name "
        "'DATABSE_PATH' is not defined (its traceback is above)"
    )
    syntax = write(project, "typo", "def f(:\n    pass\n")
    result = run("stats", "--app", syntax)
    assert result.code == 2
    assert "SyntaxError" in result.err
    assert "typo.py" in result.err
    assert "jobq/cli" not in result.err


def test_app_and_db_are_exclusive_and_one_is_needed(
    run: Callable[..., Result], project: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, package = project
    monkeypatch.delenv("JOBQ_DATABASE", raising=False)
    one_line_error(
        run("stats", "--app", f"{package}.tasks", "--db", "x.db"), "give --app or --db, not both"
    )
    one_line_error(run("stats"), "no queue given: pass --app MODULE:QUEUE", "--db", "JOBQ_DATABASE")


# -- --db ----------------------------------------------------------------------------------

VERBS_WITH_ARGS = [
    ["worker"],
    ["stats"],
    ["list"],
    ["cancel", "1"],
    ["retry", "1"],
    ["purge", "--older-than", "7d"],
    ["schedules"],
    ["pause-schedule", "digest"],
    ["resume-schedule", "digest"],
    ["trigger-schedule", "digest"],
]


@pytest.mark.parametrize("argv", VERBS_WITH_ARGS, ids=lambda argv: argv[0])
def test_every_command_refuses_a_missing_database_file_the_same_way(
    run: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    error = one_line_error(run(*argv, "--db", "typo.db"))
    assert error == (
        f"jobq: error: no database file at '{tmp_path / 'typo.db'}' (--db typo.db): check "
        "the path and the current directory, or give the queue your code creates with "
        "--app MODULE:QUEUE, which opens (and if needed creates) the database as your "
        "code does\n"
    )
    monkeypatch.setenv("JOBQ_DATABASE", "sqlite:///typo.db")
    one_line_error(run(*argv), "no database file at", "($JOBQ_DATABASE sqlite:///typo.db)")
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_move_jobs_refuses_a_missing_file_at_either_end(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    there = str(tmp_path / "there.db")
    DurableQueue(there).close()
    one_line_error(run("move-jobs", "--from", there, "--to", str(tmp_path / "new.db")), "(--to ")
    assert not (tmp_path / "new.db").exists()


def test_a_readme_style_module_given_to_import_is_explained(
    run: Callable[..., Result], project: tuple[Path, str]
) -> None:
    folder, package = project
    DurableQueue(folder / "instance" / "jobs.db").close()
    one_line_error(
        run("worker", "--db", "instance/jobs.db", "--import", f"{package}.tasks"),
        f"{package}.tasks defines DurableQueue 'queue' with tasks add, digest, shout but the "
        "worker uses the queue opened from --db; "
        f"run `jobq worker --app {package}.tasks:queue`",
    )
    one_line_error(
        run("worker", "--db", "instance/jobs.db"),
        "no task is registered on the queue opened from --db",
        "jobq worker --app MODULE:QUEUE",
    )


def test_help_documents_app_db_and_exit_codes_for_every_command() -> None:
    parser = build_parser()
    main_help = parser.format_help()
    assert "jobq worker --app myapp.tasks:queue" in main_help
    assert "Exit codes: 0 done; 1 a worker stopped" in main_help
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, command in commands.items():
        text = command.format_help()
        assert "Exit codes:" in text, name
        if name != "move-jobs":
            assert "--app MODULE[:NAME]" in text, name
            assert "--db DATABASE" in text, name
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


# -- a real worker, started as a user starts it --------------------------------------------


def test_worker_app_runs_the_modules_tasks_from_the_project_folder(
    project: tuple[Path, str],
) -> None:
    folder, package = project
    queue = DurableQueue(folder / "instance" / "jobs.db")
    try:
        queue.task("add")(lambda a, b: a + b)  # to enqueue it here, as the web app would
        job = queue.enqueue("add", 2, 3)
        jobq_script = Path(sys.executable).with_name("jobq")
        log = folder / "worker.log"
        args = [str(jobq_script), "worker", "--app", f"{package}.tasks", "--concurrency", "1"]
        with started_process(args, log=log, cwd=folder) as child:
            wait_for(
                lambda: child.poll() is None and queue.get(job.id).status is JobStatus.COMPLETED,
                f"the job completed: {log.read_text() if log.exists() else ''}",
                DEADLINE,
                interval=0.05,
            )
            child.send_signal(signal.SIGTERM)
            assert child.wait(DEADLINE) == 0, log.read_text()
        assert queue.get(job.id).decoded_result() == 5
        output = log.read_text()
        assert "Traceback" not in output
        assert "tasks: add, digest, shout" in output
    finally:
        queue.close()
