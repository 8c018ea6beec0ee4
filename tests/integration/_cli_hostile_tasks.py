"""A task whose name, queue, error and log lines carry terminal escape sequences,
and the check that output shows them escaped.

``jobq worker --import tests.integration._cli_hostile_tasks`` registers it on
``jobq.default_queue()``; a test registers it on its own queue with
:func:`register` to enqueue it. What a hostile webhook receiver or a careless
error message could put in job data: an OSC 52 clipboard write, a window title,
clear screen, a C1 CSI, a carriage return that overwrites the line, a newline
that forges a log line, and a right-to-left override.
"""

from __future__ import annotations

import contextlib
import logging

import jobq

HOSTILE = (
    "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write "rm -rf ~" to the clipboard
    "\x1b]0;pwned\x07"  # the window title
    "\x1b[2J"  # clear the screen
    "\x9b31m"  # C1 CSI: red, on terminals that read 8-bit controls
    "\rOK\n2026-01-01 00:00:00 INFO forged: line"
    "\u202etxt.exe"
)
"""Job data a terminal must never obey."""

NAME = "hostile\x1b[2J\x9b0m"
QUEUE = "q\x1b]0;title\x07"

logger = logging.getLogger(__name__)


def hostile() -> None:
    """Log, then fail, with :data:`HOSTILE` in the message and the traceback."""
    try:
        raise RuntimeError(HOSTILE)
    except RuntimeError:
        logger.warning("the receiver answered %s", HOSTILE, exc_info=True)
        raise


def assert_terminal_safe(raw: bytes) -> str:
    """``raw`` as text, after checking it holds no control character but newlines
    (no ESC, BEL, CR, C1 such as the CSI 0x9b, DEL, bidirectional override)."""
    text = raw.decode("utf-8")
    found = sorted(
        {
            f"U+{ord(c):04X}"
            for c in text
            if (c < " " and c != "\n") or "\x7f" <= c < "\xa0" or c == "\u202e"
        }
    )
    assert not found, (found, text)
    return text


def register(queue: jobq.DurableQueue) -> None:
    """Register ``hostile`` on ``queue``: two attempts, the retry at once."""
    queue.task(NAME, queue=QUEUE, max_attempts=2, backoff=0)(hostile)


with contextlib.suppress(jobq.NotConfigured):
    register(jobq.default_queue())
