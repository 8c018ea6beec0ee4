"""Set up a virtual environment and run jobq's demo or its test suite.

    python3 dev.py demo    # install into .venv, then serve the example Flask app
    python3 dev.py test    # install into .venv, then ruff, mypy --strict and pytest

Needs only Python 3.10+ with the standard library. The environment lives in
``.venv`` next to this file and is reinstalled only when the packaging files
change. Extra arguments after ``test`` are passed to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    completed = subprocess.run([str(a) for a in args], cwd=ROOT)
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


def test(args: list[str]) -> None:
    ensure_env("dev")
    run(PYTHON, "-m", "ruff", "check", ".")
    run(PYTHON, "-m", "mypy", "--strict", "jobq", "flask_jobq")
    run(PYTHON, "-m", "pytest", *args)


COMMANDS = {"demo": demo, "test": test}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 {Path(__file__).name} {{{'|'.join(COMMANDS)}}} [args...]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
