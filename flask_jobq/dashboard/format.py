"""How the dashboard writes times, numbers and charts: Jinja filters and the
geometry of the server-drawn SVG charts.

Rule: plain functions of values; imports nothing of the package.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone


def iso_time(epoch: float | None) -> str:
    """``epoch`` seconds as UTC ISO 8601 to the second (``2026-12-02 14:03:07Z``);
    an empty string for None."""
    if epoch is None:
        return ""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float | None) -> str:
    """A span of seconds in the largest fitting unit: ``45 s``, ``3 min``, ``2 h 5 min``,
    ``4 d``."""
    if seconds is None:
        return ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds:.2f} s" if seconds else "0 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours:.0f} h {rest // 60:.0f} min" if rest >= 60 else f"{hours:.0f} h"
    return f"{seconds // 86400:.0f} d"


def relative_time(epoch: float | None, now: float | None = None) -> str:
    """``epoch`` relative to ``now`` (default the wall clock): ``3 min ago``,
    ``in 20 s``, ``just now``; an empty string for None."""
    if epoch is None:
        return ""
    delta = (time.time() if now is None else now) - epoch
    if abs(delta) < 1:
        return "just now"
    text = duration(delta)
    return f"{text} ago" if delta > 0 else f"in {text}"


def human_number(value: float | int | None) -> str:
    """A count for reading: thousands separated with a thin space below a million
    (``12 345``), then ``1.2 M`` and ``3.4 G``."""
    if value is None:
        return ""
    if abs(value) >= 1_000_000_000:
        return f"{value / 1_000_000_000:.1f} G"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f} M"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "\u2009")
    return f"{int(value):,}".replace(",", "\u2009")


@dataclass(frozen=True)
class Bar:
    """One bar of a chart, in the chart's own units (its view box)."""

    x: float
    y: float
    width: float
    height: float
    kind: str
    label: str


@dataclass(frozen=True)
class Chart:
    """A bar chart of completed and failed jobs per bucket, ready for the template's
    ``<svg viewBox="0 0 {width} {height}">``."""

    title: str
    width: int
    height: int
    bars: list[Bar]
    peak: int
    first: str
    last: str
    total_completed: int
    total_failed: int


CHART_WIDTH = 600
CHART_HEIGHT = 120


def bar_chart(
    title: str, buckets: Sequence[tuple[float, int, int]], *, label_format: str = "%H:%M"
) -> Chart:
    """Stacked bars (completed below, failed above) of ``buckets``, ``(start,
    completed, failed)`` in time order, scaled to the highest bucket."""
    peak = max((done + failed for _, done, failed in buckets), default=0)
    slot = CHART_WIDTH / max(len(buckets), 1)
    scale = (CHART_HEIGHT - 4) / peak if peak else 0.0
    bars = []
    for index, (start, done, failed) in enumerate(buckets):
        x = index * slot + slot * 0.1
        width = slot * 0.8
        label = datetime.fromtimestamp(start, tz=timezone.utc).strftime(label_format)
        done_height = done * scale
        failed_height = failed * scale
        tip = f"{label} UTC: {done} completed, {failed} failed"
        if done:
            bars.append(Bar(x, CHART_HEIGHT - done_height, width, done_height, "completed", tip))
        if failed:
            top = CHART_HEIGHT - done_height - failed_height
            bars.append(Bar(x, top, width, failed_height, "failed", tip))

    def stamp(index: int) -> str:
        if not buckets:
            return ""
        moment = datetime.fromtimestamp(buckets[index][0], tz=timezone.utc)
        return moment.strftime(label_format)

    return Chart(
        title=title,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        bars=bars,
        peak=peak,
        first=stamp(0),
        last=stamp(-1),
        total_completed=sum(done for _, done, _ in buckets),
        total_failed=sum(failed for _, _, failed in buckets),
    )
