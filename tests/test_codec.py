"""JSON payloads: faithful round trips, clear refusals, never pickle."""

from __future__ import annotations

import datetime
import enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobq import codec
from jobq.errors import PayloadError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_round_trip_is_exact(value: Any) -> None:
    assert codec.decode(codec.encode(value)) == value


def test_tuples_come_back_as_lists_and_str_enums_as_strings() -> None:
    class Colour(str, enum.Enum):
        RED = "red"

    assert codec.decode(codec.encode({"t": (1, 2), "c": Colour.RED})) == {"t": [1, 2], "c": "red"}


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({"x": {1: "a"}}, "args['x']", "has a key 1 of type int; JSON keys are strings"),
        ([1, float("nan")], "args[1]", "is nan, which JSON cannot represent"),
        ([float("inf")], "args[0]", "is inf"),
        ({"when": datetime.datetime(2026, 1, 1)}, "args['when']", "dt.isoformat()"),
        ([[b"raw"]], "args[0][0]", "is a bytes, which is not JSON-serialisable"),
        ([{1, 2}], "args[0]", "pass a sorted list"),
        ([object()], "args[0]", "job data must be str, int, float, bool, None, list or dict"),
    ],
)
def test_refusals_name_the_value_and_how_to_fix_it(value: Any, path: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        codec.encode(value, name="args")
    assert isinstance(caught.value, TypeError)
    assert caught.value.path == path
    assert str(caught.value).startswith(path)
    assert message in str(caught.value)


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    | st.complex_numbers() | st.decimals() | st.datetimes() | st.uuids() | st.just(...)
    | st.frozensets(st.integers(), max_size=3),
    lambda children: st.lists(children) | st.tuples(children, children)
    | st.sets(st.integers(), max_size=3)
    | st.dictionaries(st.text() | st.integers() | st.booleans() | st.none(), children),
    max_leaves=20,
)


@given(anything)
def test_fuzz_any_value_round_trips_or_is_refused_by_name(value: Any) -> None:
    # The fuzz target of the codec: whatever a caller passes, the answer is a
    # faithful JSON text or a PayloadError (a TypeError) naming where the problem is.
    try:
        text = codec.encode(value, name="args")
    except PayloadError as exc:
        refused: PayloadError | None = exc
    else:
        refused = None
        assert codec.encode(codec.decode(text)) == text
    if refused is not None:
        assert refused.path.startswith("args")
        assert str(refused).startswith(refused.path)
