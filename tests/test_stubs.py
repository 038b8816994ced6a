"""Types, checked against the installed package.

- stubtest: every compiled module has a ``.pyi`` stub, and it matches the module;
- ``mypy --strict`` is clean on the package (its ``py.typed`` and stubs included) and on the
  README's Python examples, read as one session like ``test_docs.test_readme_example_runs``.

Every check runs mypy in a subprocess from an empty directory with an empty configuration, so
that neither a source tree nor the project's ``[tool.mypy]`` settings take part. mypy is in the
``test`` extra: these tests do not skip for want of it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import linquant
from linquant._backend import available_backends

ALLOWLIST = Path(__file__).resolve().parent / "stubtest_allowlist.txt"  # commented, one entry
# Environment variables that would point mypy at other sources than the installed package.
_DROPPED = ("PYTHONPATH", "MYPYPATH", "MYPY_CACHE_DIR")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory with a mypy configuration of defaults; its cache is shared by the
    checks. threadpoolctl, which a README example imports, ships no types of its own."""
    path = tmp_path_factory.mktemp("mypy")
    untyped = "[mypy-threadpoolctl,onnxruntime]\nignore_missing_imports = True\n"  # no stubs
    (path / "mypy.ini").write_text("[mypy]\n" + untyped)
    return path


def _run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in _DROPPED}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _mypy_strict(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    options = ("--strict", "--config-file", "mypy.ini", "--cache-dir", ".mypy_cache")
    return _run(workdir, "mypy", *options, "--no-color-output", "--no-error-summary", *args)


def _compiled_modules() -> list[str]:
    """The extension modules of the installed package that this CPU can import.

    Kernel builds for a wider instruction set than the CPU runs are left out: importing one
    could execute its instructions.
    """
    from linquant import _compiled

    runnable = {f"_kernels_{level}" for level in _compiled.supported_levels()}
    names = []
    for module in pkgutil.iter_modules(linquant.__path__):
        spec = importlib.util.find_spec(f"linquant.{module.name}")
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            continue
        if module.name.startswith("_kernels_") and module.name not in runnable:
            continue
        names.append(f"linquant.{module.name}")
    return sorted(names)


@pytest.mark.skipif(
    len(available_backends()) == 1,
    reason="no compiled extension in this installation (LINQUANT_DISABLE_CEXT=1)",
)
def test_stubs_match_the_compiled_modules(workdir: Path) -> None:
    modules = _compiled_modules()
    assert "linquant._kernels_baseline" in modules
    options = ("--mypy-config-file", "mypy.ini", "--allowlist", str(ALLOWLIST))
    result = _run(workdir, "mypy.stubtest", *options, *modules)
    assert result.returncode == 0, result.stdout + result.stderr


def _numpy_before_2_3() -> bool:
    major, minor = (int(part) for part in np.__version__.split(".")[:2])
    return (major, minor) < (2, 3)


def test_package_is_mypy_strict_clean(workdir: Path) -> None:
    # NumPy before 2.3 (CPython 3.10 gets none newer) gives np.ndarray and np.dtype no default
    # type arguments: --strict then wants them where the package writes a bare np.ndarray, and
    # reads what such arrays return as Any. Only those two error codes are left out there.
    relaxed = ("--disable-error-code", "type-arg", "--disable-error-code", "no-any-return")
    result = _mypy_strict(workdir, *(relaxed if _numpy_before_2_3() else ()), "-p", "linquant")
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_examples_are_mypy_strict_clean(
    workdir: Path, readme_python_blocks: list[str]
) -> None:
    blocks = readme_python_blocks
    # One file, the blocks in order: a reader runs them as one session.
    (workdir / "readme_examples.py").write_text("\n".join(blocks), encoding="utf-8")
    result = _mypy_strict(workdir, "readme_examples.py")
    assert result.returncode == 0, result.stdout + result.stderr
