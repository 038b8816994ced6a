"""The examples in the docstrings and in the README run and show what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import linquant
from linquant._backend import available_backends

# every module of the installed package, but the extension modules, the compiled backend's
# wrapper where the extension is not built, and __main__
SKIPPED = {"linquant.__main__"} | (
    {"linquant._compiled"} if len(available_backends()) == 1 else set()
)
MODULES = sorted(
    name for _, name, _ in pkgutil.iter_modules(linquant.__path__, "linquant.")
    if not name.startswith("linquant._kernels") and name not in SKIPPED
)  # fmt: skip


# modules of optional dependencies (extras), which the test extra leaves out where they have
# no wheels (see pyproject.toml)
OPTIONAL = {"linquant.codec": "numcodecs", "linquant.zarr": "zarr", "linquant.dask": "dask"}


@pytest.mark.parametrize("name", ["linquant", *MODULES])
def test_docstring_examples(name: str) -> None:
    if name in OPTIONAL:
        pytest.importorskip(
            OPTIONAL[name], reason=f"{name}'s optional dependency is not installed: it needs it"
        )
    previous = np.get_printoptions()
    np.set_printoptions(legacy=False)
    try:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    finally:
        np.set_printoptions(**previous)
    assert result.failed == 0


def test_readme_example_runs(readme_python_blocks: list[str]) -> None:
    blocks = readme_python_blocks
    namespace: dict[str, object] = {}  # one session, as a reader runs them in order
    previous = (linquant.get_backend(), linquant.get_num_threads())
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    finally:
        linquant.set_backend(previous[0])
        linquant.set_num_threads(previous[1])
