"""``make_job`` (storage's fast path) builds exactly the ``Job`` that ``Job(...)`` does."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from jobq.job import Job, JobError, JobStatus, make_job


def test_make_job_takes_every_field_of_job_in_order() -> None:
    names = [field.name for field in dataclasses.fields(Job)]
    assert list(inspect.signature(make_job).parameters) == names


def test_make_job_equals_the_dataclass_constructor() -> None:
    values = (
        7,
        "mail",
        "send",
        '{"args":[1],"kwargs":{}}',
        3,
        JobStatus.PROCESSING,
        2,
        5,
        10.5,
        "host:1:pool1",
        "token",
        40.5,
        JobError("ValueError", "bad", "Traceback ..."),
        "null",
        "0.5",
        "key",
        True,
        1.25,
        10.75,
        None,
        10.75,
    )
    made = make_job(*values)
    assert made == Job(*values)
    assert dataclasses.astuple(made) == dataclasses.astuple(Job(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.id = 8  # type: ignore[misc]
