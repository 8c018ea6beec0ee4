"""Cutting a job log line to its limit: exactly the limit, and a marker that tells
the truth about how much was cut."""

from __future__ import annotations

import re

import pytest

from jobq.defaults import JOB_LOG_LINE_CHARS
from jobq.storage.job_logs import clip


@pytest.mark.parametrize("length", [1001, 1002, 1022, 1023, 1024, 1100, 5000, 1_000_000])
def test_a_long_line_is_cut_to_the_limit_with_a_true_count(length: int) -> None:
    message = "".join(chr(ord("a") + i % 26) for i in range(length))
    line = clip(message)
    assert len(line) == JOB_LOG_LINE_CHARS
    marker = re.search(r"\.\.\.\[(\d+) more characters\]$", line)
    assert marker is not None
    cut = int(marker.group(1))
    assert line[: marker.start()] == message[: length - cut]


def test_short_lines_are_kept_and_nul_is_shown() -> None:
    assert clip("x" * JOB_LOG_LINE_CHARS) == "x" * JOB_LOG_LINE_CHARS
    assert clip("") == ""
    assert clip("a\x00b") == "a\\0b"
