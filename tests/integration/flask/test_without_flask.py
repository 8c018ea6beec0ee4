"""Importing flask_jobq where Flask is not installed says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.helpers import ROOT

_WITHOUT_FLASK = textwrap.dedent(
    """
    import importlib.abc
    import sys


    class NoFlask(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "flask" or name.startswith("flask."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, NoFlask())
    import jobq  # the core needs no Flask

    try:
        import flask_jobq
    except ImportError as error:
        print(type(error).__name__, error.name, error)
    else:
        print("imported")
    """
)


def test_import_without_flask_says_to_install_the_flask_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FLASK], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ModuleNotFoundError flask "), done.stdout
    assert 'pip install "jobq[flask]"' in done.stdout
