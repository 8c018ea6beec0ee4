"""What a page's generated script calls to run its blocks, in the page's folder.

Loaded by file path (never put on ``sys.path``), so the blocks see only what a
reader's interpreter would: the current folder and the installed packages.
A failure prints a line starting with :data:`FAILED` naming the page and line,
then exits 1; the test turns that into its message.
"""

from __future__ import annotations

import linecache
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

FAILED = "SNIPPET FAILED:"
BEGIN = ">>> snippet"
BACKGROUND_STOP_SECONDS = 45.0
"""How long a background command may take to exit after SIGTERM (jobq's grace is 30 s)."""
WAIT_HTTP_SECONDS = 30.0

keep_going = False
"""Run the blocks after a failed one too (``python -m tests.docs.run --keep-going``)."""
failures = 0

_background: list[tuple[subprocess.Popen[bytes], str, Path]] = []


def begin(where: str, language: str) -> None:
    print(f"{BEGIN} {where} ({language})", flush=True)


def fail(where: str, what: str) -> None:
    """Report a failed block; end the page at once unless ``keep_going`` is set."""
    global failures
    sys.stdout.flush()
    sys.stderr.flush()
    print(f"\n{FAILED} {where}: {what}", flush=True)
    failures += 1
    if not keep_going:
        stop_background(report=False)
        os._exit(1)


def finish() -> None:
    """Stop the background commands (reporting any unclean exit) and exit 1 after failures."""
    stop_background()
    sys.stdout.flush()
    os._exit(1 if failures else 0)


def python(namespace: dict[str, Any], code: str, where: str, first_line: int, expect: str) -> None:
    """Run ``code`` in ``namespace``; its lines in tracebacks are the page's lines."""
    filename = where.rsplit(":", 1)[0]
    padded = "\n" * (first_line - 1) + code
    linecache.cache[filename] = (len(padded), None, padded.splitlines(True), filename)
    importlib_invalidate()
    try:
        exec(compile(padded, filename, "exec"), namespace)
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None) and not expect:
            return
        if exc.__traceback__ is not None:  # the page's frames, not this runner's
            exc = exc.with_traceback(exc.__traceback__.tb_next)
        shown = "".join(traceback.format_exception(exc))
        print(shown, flush=True)
        if not expect:
            fail(where, f"python block raised {type(exc).__name__}")
        elif expect not in shown:
            fail(where, f"python block raised, but its error does not contain {expect!r}")
        return
    sys.stdout.flush()
    sys.stderr.flush()
    if expect:
        fail(where, f"python block was expected to fail with {expect!r} but ran without error")


def importlib_invalidate() -> None:
    import importlib

    importlib.invalidate_caches()  # files written by earlier blocks are importable


def shell(code: str, where: str, expect: str, background: bool, logs: str) -> None:
    """Run ``code`` with ``bash -e`` in the current folder."""
    sys.stdout.flush()
    sys.stderr.flush()
    if background:
        log = Path(logs) / f"background-{len(_background) + 1}.log"
        with open(log, "wb") as output:
            child = subprocess.Popen(
                ["bash", "-e", "-c", code], stdout=output, stderr=subprocess.STDOUT
            )
        _background.append((child, where, log))
        return
    completed = subprocess.run(
        ["bash", "-e", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    shown = completed.stdout.decode(errors="replace")
    print(shown, end="", flush=True)
    if expect:
        if completed.returncode == 0:
            fail(where, f"shell block was expected to fail with {expect!r} but exited 0")
        elif expect not in shown:
            fail(where, f"shell block failed, but its output does not contain {expect!r}")
        return
    if completed.returncode:
        fail(where, f"shell block exited with status {completed.returncode}")


def wait_http(url: str, where: str) -> None:
    """Wait until ``url`` answers anything over HTTP, or fail if a background command died."""
    deadline = time.monotonic() + WAIT_HTTP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an answer, whatever its status
        except OSError:
            pass
        for entry in list(_background):
            child, started, log = entry
            if child.poll() is not None:
                _background.remove(entry)  # reported here, not again at the page's end
                print(log.read_text(errors="replace"), flush=True)
                fail(
                    where,
                    f"the background command of {started} exited ({child.returncode}) "
                    f"before {url} answered",
                )
                return
        if time.monotonic() > deadline:
            fail(where, f"{url} did not answer within {WAIT_HTTP_SECONDS:.0f} s")
            return
        time.sleep(0.1)


def stop_background(report: bool = True) -> None:
    """SIGTERM every background command, newest first; each must exit cleanly: status 0
    (or death by that SIGTERM after handling it) and no traceback in its output."""
    problems: list[str] = []
    while _background:
        child, where, log = _background.pop()
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(BACKGROUND_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                problems.append(
                    f"{where}: background command still ran "
                    f"{BACKGROUND_STOP_SECONDS:.0f} s after SIGTERM"
                )
        output = log.read_text(errors="replace")
        print(f"--- output of the background command of {where} ---\n{output}", flush=True)
        clean = child.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
        if not clean:
            problems.append(f"{where}: background command exited with status {child.returncode}")
        elif "Traceback (most recent call last)" in output:
            problems.append(f"{where}: background command printed a traceback")
    if report:
        for problem in problems:
            where, _, what = problem.partition(": ")
            fail(where, what)
