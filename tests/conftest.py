"""Shared fixtures: every test that takes ``backend`` runs once per available backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import linquant as lq
from linquant._backend import available_backends


@pytest.fixture(params=available_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Select each available backend in turn, restoring the previous one afterwards."""
    previous = lq.get_backend()
    lq.set_backend(request.param)
    yield request.param
    lq.set_backend(previous)
