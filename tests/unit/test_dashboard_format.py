"""How the dashboard writes times, numbers and charts (flask_jobq.dashboard.format)."""

from __future__ import annotations

import pytest

pytest.importorskip("flask")

from flask_jobq.dashboard.format import (
    CHART_HEIGHT,
    bar_chart,
    duration,
    human_number,
    iso_time,
    relative_time,
)

NOW = 1_796_217_600.0  # 2026-12-02 13:20:00 UTC


def test_times_are_utc_iso_and_relative_to_the_given_now() -> None:
    assert iso_time(NOW) == "2026-12-02 13:20:00Z"
    assert iso_time(None) == ""
    assert relative_time(NOW - 180, NOW) == "3 min ago"
    assert relative_time(NOW + 20, NOW) == "in 20 s"
    assert relative_time(NOW - 0.4, NOW) == "just now"
    assert relative_time(NOW - 2 * 3600 - 300, NOW) == "2 h 5 min ago"
    assert relative_time(NOW - 4 * 86400, NOW) == "4 d ago"
    assert relative_time(None, NOW) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.25, "0.25 s"), (45, "45 s"), (600, "10 min"), (7200, "2 h"), (90000, "1 d")],
)
def test_durations_use_the_largest_fitting_unit(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_numbers_are_grouped_then_shortened() -> None:
    assert human_number(999) == "999"
    assert human_number(12_345) == "12\u2009345"
    assert human_number(1_250_000) == "1.2 M"
    assert human_number(3_400_000_000) == "3.4 G"
    assert human_number(2.5) == "2.5"
    assert human_number(None) == ""


def test_a_chart_stacks_failed_over_completed_scaled_to_the_peak() -> None:
    buckets = [(NOW - 120, 10, 0), (NOW - 60, 30, 10), (NOW, 0, 0)]

    chart = bar_chart("Per minute", buckets)

    assert (chart.peak, chart.total_completed, chart.total_failed) == (40, 40, 10)
    done, tall_done, tall_failed = chart.bars  # the empty bucket draws nothing
    assert (done.kind, tall_done.kind, tall_failed.kind) == ("completed", "completed", "failed")
    assert tall_done.y + tall_done.height == pytest.approx(CHART_HEIGHT)  # on the axis
    assert tall_failed.y + tall_failed.height == pytest.approx(tall_done.y)  # stacked
    assert tall_done.height == pytest.approx(3 * done.height)
    assert tall_failed.label.endswith("30 completed, 10 failed")
    assert bar_chart("empty", []).bars == []
