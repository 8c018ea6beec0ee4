"""``python3 dev.py run`` / ``demo``: the program runs as ``python FILE`` would, Ctrl-C
ends it quietly, SIGTERM is passed on. Real processes; the program is a tiny script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import BOUNDED_WAIT

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent(
    """\
    import signal, sys, time
    import sibling  # next to this file, as with `python program.py`

    def on_term(signum, frame):
        print("stopping cleanly", flush=True)
        sys.exit(0)

    if "--trap-term" in sys.argv:
        signal.signal(signal.SIGTERM, on_term)
    if "--fail" in sys.argv:
        sys.exit(3)
    print("ready", sibling.NAME, sys.argv[1:], flush=True)
    time.sleep(60)
    """
)


def start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    (tmp_path / "program.py").write_text(PROGRAM)
    (tmp_path / "sibling.py").write_text("NAME = 'sibling'\n")
    harness = "import sys, dev; dev.run_program(sys.argv[1], sys.argv[2:])"
    return subprocess.Popen(
        [sys.executable, "-c", harness, str(tmp_path / "program.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )


def wait_ready(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("ready"), line
    return line


def test_ctrl_c_stops_the_program_quietly_with_status_0(tmp_path: Path) -> None:
    process = start(tmp_path, "--flag")
    assert wait_ready(process) == "ready sibling ['--flag']\n"
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, errors = process.communicate(timeout=BOUNDED_WAIT)
    assert process.returncode == 0
    assert "Traceback" not in errors
    assert "KeyboardInterrupt" not in errors


def test_sigterm_is_passed_on_and_a_clean_stop_exits_0(tmp_path: Path) -> None:
    process = start(tmp_path, "--trap-term")
    wait_ready(process)
    process.send_signal(signal.SIGTERM)  # to dev.py only, as systemd or docker stop do
    output, errors = process.communicate(timeout=BOUNDED_WAIT)
    assert process.returncode == 0
    assert "stopping cleanly" in output
    assert errors == ""


def test_sigterm_to_a_program_without_a_handler_still_exits_0(tmp_path: Path) -> None:
    process = start(tmp_path)
    wait_ready(process)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=BOUNDED_WAIT)
    assert process.returncode == 0
    assert errors == ""


def test_a_failing_program_keeps_its_status(tmp_path: Path) -> None:
    process = start(tmp_path, "--fail")
    process.communicate(timeout=BOUNDED_WAIT)
    assert process.returncode == 3


def test_every_command_shares_one_environment_installed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dev

    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text("")
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(dev, "PYTHON", python)
    monkeypatch.setattr(dev, "STAMP", tmp_path / ".installed")
    monkeypatch.setattr(dev, "run", lambda *args, **kwargs: calls.append(args))
    dev.ensure_env()  # the first command installs
    installs = len(calls)
    assert installs == 2
    assert calls[-1][-1] == ".[dev]"
    dev.ensure_env()  # any later one (demo after test, test after demo) does not
    assert len(calls) == installs
