"""Shared fixtures: every test that takes ``backend`` runs once per available backend."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

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


README = Path(__file__).resolve().parent.parent / "README.md"


def _imports_available(block: str) -> bool:
    """Whether every top-level package that ``block`` imports is installed."""
    names = re.findall(r"^(?:import|from) (\w+)", block, flags=re.MULTILINE)
    return all(importlib.util.find_spec(name) is not None for name in names)


@pytest.fixture
def readme_python_blocks() -> list[str]:
    """The README's ``python`` code blocks, in order, but those whose imports are missing.

    The Zarr example needs Zarr, which needs CPython 3.11 (see the ``test`` extra); blocks
    marked otherwise (e.g. ``python cluster``, which needs a running Dask scheduler) are not
    taken.
    """
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks
    return [block for block in blocks if _imports_available(block)]
