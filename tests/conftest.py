"""Shared fixtures: every test that takes ``backend`` runs once per available backend."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

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


PythonRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def python() -> PythonRun:
    """``python(code, **env)``: run ``code`` in a new interpreter with ``env`` added.

    Warnings are shown (on stderr), not turned into errors, so that a test can count them.
    """

    def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-W", "default", "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )

    return run
