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
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
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
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary()
    | st.complex_numbers()
    | st.decimals()
    | st.datetimes()
    | st.uuids()
    | st.just(...)
    | st.just("lone \udc80 surrogate")
    | st.frozensets(st.integers(), max_size=3),
    lambda children: (
        st.lists(children)
        | st.tuples(children, children)
        | st.sets(st.integers(), max_size=3)
        | st.dictionaries(st.text() | st.integers() | st.booleans() | st.none(), children)
    ),
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


def _nested(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return outer


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        # Each of these raised a raw error (UnicodeEncodeError when the database
        # encoded the text, RecursionError, ValueError) instead of naming the value.
        (["ok", "a\ud800b"], "args[1]", "is text with a lone surrogate (U+D800 at index 1)"),
        ({"k": {"\udc00": 1}}, "args['k']", "has a key with a lone surrogate (U+DC00"),
        ([1, 10**5000], "args[1]", "is an int too long to write as text"),
        (_nested(5000), "args" + "[0]" * 128, "is nested more than 128 lists or dicts deep"),
        ({"a": _nested(200)}, "args['a']" + "[0]" * 127, "is nested more than 128"),
    ],
)
def test_values_json_or_utf8_cannot_write_are_refused_by_name(
    value: Any, path: str, message: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        codec.encode(value, name="args")
    assert caught.value.path == path
    assert message in str(caught.value)
    assert len(str(caught.value)) < 300  # a deep path is shortened in the message


def test_a_value_that_contains_itself_is_refused_not_a_recursion_error() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    with pytest.raises(PayloadError, match="contains itself"):
        codec.encode(looped, name="args")


def test_nesting_up_to_the_limit_round_trips() -> None:
    deepest = _nested(codec.MAX_DEPTH)
    assert codec.decode(codec.encode(deepest)) == deepest


@pytest.mark.parametrize(
    ("args", "path"),
    [(("ok", "\ud800"), "t arguments['args'][1]"), ((1, -(10**5000)), "t arguments['args'][1]")],
)
def test_plain_arguments_take_the_same_checks(args: tuple[Any, ...], path: str) -> None:
    # The fast path for str/int/bool/None arguments must refuse what encode() refuses.
    with pytest.raises(PayloadError) as caught:
        codec.encode_plain_args(args, name="t arguments")
    assert caught.value.path == path
    assert codec.encode_plain_args(("é", 1, None, True)) == '{"args":["é",1,null,true],"kwargs":{}}'


def test_a_task_refuses_a_lone_surrogate_and_stores_nothing(tmp_path: Any) -> None:
    import contextlib

    from jobq import DurableQueue

    with contextlib.closing(DurableQueue(tmp_path / "q.db")) as queue:

        @queue.task("greet")
        def greet(name: str, extra: Any = None) -> None: ...

        for call in (lambda: greet.enqueue("\ud83d"), lambda: greet.enqueue("x", extra=["\ud83d"])):
            with pytest.raises(PayloadError, match=r"greet arguments\[.*lone surrogate"):
                call()
        with pytest.raises(PayloadError, match="nested more than 128"):
            greet.enqueue(_nested(5000))
        assert queue.list() == []
