"""Every backend accepts the same integers and refuses the same ones, naming the value.

A priority or attempt count is held to PostgreSQL's ``integer`` column on every
backend: before, SQLite stored a priority of 2**31 that PostgreSQL refused, and
2**63 reached the SQLite driver as a raw OverflowError. Runs once per backend.
"""

from __future__ import annotations

import pytest

from jobq.storage.base import NewJob, Storage
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import T0, claim_one

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1


def test_the_extremes_of_the_ranges_are_stored_and_claimed_in_order(storage: Storage) -> None:
    low = storage.enqueue(NewJob("t", "[]", priority=INT4_MIN), now=T0).job
    high = storage.enqueue(NewJob("t", "[]", priority=INT4_MAX, max_attempts=INT4_MAX), now=T0)
    assert (low.priority, high.job.priority, high.job.max_attempts) == (
        INT4_MIN,
        INT4_MAX,
        INT4_MAX,
    )
    assert claim_one(storage, T0).id == high.job.id
    assert claim_one(storage, T0).id == low.id


BAD = [
    ("priority", INT4_MAX + 1),
    ("priority", INT4_MIN - 1),
    ("priority", 2**63),
    ("priority", -(2**64)),
    ("max_attempts", INT4_MAX + 1),
    ("max_attempts", 2**63),
    ("max_attempts", 0),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_out_of_range_integers_are_refused_the_same_way_everywhere(
    storage: Storage, field: str, value: int
) -> None:
    new = NewJob("t", "[]")._replace(**{field: value})
    expected = rf"{field} must be an integer from -?\d+ to \d+, got {value}"
    with pytest.raises(ValueError, match=expected):
        storage.enqueue(new, now=T0)
    with pytest.raises(ValueError, match=rf"{expected} \(jobs\[1\]\)"):
        storage.enqueue_many([NewJob("t", "[]"), new], now=T0)
    with pytest.raises(ValueError, match=expected):
        storage.enqueue_payloads(new, ["[]", "[]"], now=T0)
    assert storage.list_jobs() == []


def test_a_purge_batch_beyond_64_bits_is_refused_by_name(storage: Storage) -> None:
    expected = rf"batch_size must be an integer from 1 to \d+, got {2**63}"
    with pytest.raises(ValueError, match=expected):
        storage.purge(older_than=T0, batch_size=2**63)
