"""Fixtures for the storage contract suite: each test runs once per backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jobq.storage.base import Storage
from tests.contract._backends import BACKENDS, make_spec, open_storage, release_spec


@pytest.fixture(params=BACKENDS)
def spec(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[dict[str, Any]]:
    """JSON description of a fresh database of the backend under test. A module
    whose every test runs on Redis too parametrises it with
    :data:`~tests.contract._backends.CORE_BACKENDS` (``pytestmark``)."""
    made = make_spec(request.param, tmp_path)
    yield made
    release_spec(made)


@pytest.fixture
def storage(spec: dict[str, Any]) -> Iterator[Storage]:
    """An open storage on a fresh database, closed after the test."""
    opened = open_storage(spec)
    try:
        yield opened
    finally:
        opened.close()
