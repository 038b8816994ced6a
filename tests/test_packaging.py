"""The installed distribution: its version, what the wheel ships, the test requirements, and
the GIL on free-threaded CPython."""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig

import pytest
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.version import Version

import linquant
from linquant._backend import available_backends
from linquant._version import __version__ as source_version

DIST = importlib.metadata.distribution("linquant")
LEVELS = ("baseline", "avx2", "avx512")
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
MUSL = any(tag.platform.startswith("musllinux") for tag in sys_tags())


def _editable() -> bool:
    direct_url = DIST.read_text("direct_url.json")
    return bool(direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"))


def _package_files() -> set[str]:
    """The files of the package (not of its metadata) that the installation recorded."""
    files = (str(path).replace("\\", "/") for path in DIST.files or ())
    return {name for name in files if name.startswith("linquant/") and "__pycache__" not in name}


def test_version_is_defined_once_and_exported() -> None:
    # _version.py is the one definition; the build reads it into the metadata.
    assert linquant.__version__ == source_version == DIST.version
    assert "__version__" in linquant.__all__
    assert str(Version(linquant.__version__)) == linquant.__version__  # normalized PEP 440


@pytest.mark.skipif(_editable(), reason="an editable install has no wheel contents to check")
def test_wheel_ships_types_and_only_what_runs() -> None:
    files = _package_files()
    assert "linquant/py.typed" in files
    assert {f"linquant/_kernels_{level}.pyi" for level in LEVELS} <= files
    assert not [name for name in files if name.endswith((".c", ".pyx", ".pxi", ".h"))]
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    extensions = {name.split("/")[-1].split(".")[0] for name in files if name.endswith(suffixes)}
    if len(available_backends()) == 1:  # built with LINQUANT_DISABLE_CEXT=1
        assert not extensions
    else:
        assert "_kernels_baseline" in extensions
        # every compiled module comes with its stub (tests/test_stubs.py checks that they match)
        assert {f"linquant/{name}.pyi" for name in extensions} <= files


def _test_requirements() -> list[Requirement]:
    requirements = [Requirement(line) for line in DIST.requires or ()]
    return [
        r
        for r in requirements
        if r.marker is not None
        and r.marker.evaluate({"extra": "test"})
        and not r.marker.evaluate({"extra": ""})
    ]


def test_test_requirements_are_installed() -> None:
    """Each requirement of the ``test`` extra whose marker holds here is installed.

    So ONNX Runtime, numcodecs and Zarr, whose tests skip where they are missing, are there
    wherever they have wheels. No marker can tell musl libc, nor a free-threaded CPython, where
    ONNX Runtime has wheels for glibc Linux only and numcodecs none for musl; there the wheels
    are tested without them (``[tool.cibuildwheel]``).
    """
    requirements = _test_requirements()
    assert {"pytest", "hypothesis", "mypy", "dask"} <= {r.name for r in requirements}
    left_out = MUSL or (FREE_THREADED and sys.platform != "linux")
    missing = []
    for requirement in requirements:
        if left_out and requirement.name in ("onnx", "onnxruntime", "numcodecs", "zarr"):
            continue
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(str(requirement))
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{requirement} (found {version})")
    assert not missing, f"install the test extra: pip install 'linquant[test]'; missing {missing}"


@pytest.mark.skipif(not FREE_THREADED, reason="CPython with a GIL: there is no GIL to keep off")
@pytest.mark.skipif(
    len(available_backends()) == 1,
    reason="no compiled extension in this installation (LINQUANT_DISABLE_CEXT=1)",
)
def test_compiled_modules_keep_the_gil_disabled() -> None:
    # Importing an extension module that does not declare itself free-threading compatible
    # turns the GIL back on, with a RuntimeWarning (an error here).
    code = (
        "import sys, numpy as np, linquant as lq\n"
        "assert lq.get_backend() == 'cython'\n"
        "lq.quantize(np.linspace(-1, 1, 1 << 19, dtype=np.float32)).dequantize()\n"
        "assert not sys._is_gil_enabled(), 'the GIL was enabled'\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "PYTHON_GIL"}
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
