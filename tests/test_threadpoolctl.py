"""threadpoolctl sees and limits linquant's pool as it does BLAS and OpenMP (``_threads``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import linquant as lq
from linquant import _backend
from linquant._backend import available_backends

if TYPE_CHECKING:
    from tests.conftest import PythonRun

# in the test extra (and the cibuildwheel overrides that leave the extra out): missing only
# where the tests run without the extra
threadpoolctl = pytest.importorskip(
    "threadpoolctl", reason="threadpoolctl (optional, in the test extra) is not installed"
)

needs_pool = pytest.mark.skipif(
    available_backends() == ("numpy",),
    reason="no compiled kernels, so no pool, in this installation (LINQUANT_DISABLE_CEXT=1)",
)
THREADS = 3  # not the default on a machine of 1, 2 or 4 CPUs, nor the limit below


@pytest.fixture
def threads() -> Iterator[int]:
    """``THREADS`` threads for the test, the previous count restored after it."""
    previous = lq.get_num_threads()
    lq.set_num_threads(THREADS)
    yield THREADS
    lq.set_num_threads(previous)


def _linquant_entries() -> list[dict[str, Any]]:
    return [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "linquant"]


@needs_pool
def test_threadpool_info_lists_the_pool_once(threads: int) -> None:
    (entry,) = _linquant_entries()  # once, though every kernel build the CPU runs is loaded
    assert entry["num_threads"] == threads
    assert entry["internal_api"] == "linquant"
    assert entry["version"] == lq.__version__
    assert entry["cpu_level"] == lq.get_cpu_level()
    assert entry["prefix"] == "_kernels_baseline"


@needs_pool
def test_threadpool_limits_sets_the_count_and_restores_it(threads: int) -> None:
    with threadpoolctl.threadpool_limits(1):
        assert lq.get_num_threads() == 1
        assert [entry["num_threads"] for entry in _linquant_entries()] == [1]
    assert lq.get_num_threads() == threads
    with threadpoolctl.threadpool_limits(2, user_api="linquant"):
        assert lq.get_num_threads() == 2
    with threadpoolctl.threadpool_limits({"linquant": 1}):
        assert lq.get_num_threads() == 1
    assert lq.get_num_threads() == threads


def test_other_user_apis_leave_the_pool_alone(threads: int) -> None:
    for user_api in ("blas", "openmp"):
        with threadpoolctl.threadpool_limits(1, user_api=user_api):
            assert lq.get_num_threads() == threads


@needs_pool
def test_results_are_identical_under_the_limit(threads: int) -> None:
    # large enough to be split across threads
    size = _backend._compiled.PARALLEL_MIN_SIZE + 12345  # type: ignore[union-attr]
    x = np.random.default_rng(3).normal(0.0, 5.0, size).astype(np.float32)

    def results() -> list[np.ndarray]:
        qa = lq.quantize(x, bits=6)
        codes = lq.quantize_linear(x, 0.03, 7)
        back = lq.dequantize_linear(codes, 0.03, 7)
        return [qa.data, np.asarray([qa.scale, qa.zero_point]), codes, back, *lq.minmax(x)]

    expected = results()
    with threadpoolctl.threadpool_limits(1):
        assert lq.get_num_threads() == 1
        limited = results()
    for got, want in zip(limited, expected, strict=True):
        np.testing.assert_array_equal(got, want)


IMPORTS = ("import threadpoolctl, linquant", "import linquant, threadpoolctl")


@needs_pool
@pytest.mark.parametrize("imports", IMPORTS, ids=["threadpoolctl first", "linquant first"])
def test_registered_whichever_is_imported_first(python: PythonRun, imports: str) -> None:
    code = (
        f"{imports}\n"
        "linquant.set_num_threads(3)\n"
        "with threadpoolctl.threadpool_limits(1):\n"
        "    print(linquant.get_num_threads())\n"
        "print([i['num_threads'] for i in threadpoolctl.threadpool_info()"
        " if i['user_api'] == 'linquant'])\n"
        "print(type(threadpoolctl.__loader__) is type(threadpoolctl.__spec__.loader)"
        " and type(threadpoolctl.__loader__).__module__ != 'linquant._threads')\n"
    )
    assert python(code).stdout.split("\n") == ["1", "[3]", "True", ""]


def test_importing_linquant_does_not_import_threadpoolctl(python: PythonRun) -> None:
    code = "import sys, linquant\nprint('threadpoolctl' in sys.modules)\n"
    assert python(code).stdout.strip() == "False"


def test_without_compiled_kernels_nothing_is_listed(python: PythonRun) -> None:
    # as a pure-NumPy installation: no compiled module can be imported
    code = (
        "import sys\n"
        "sys.modules['linquant._buffers'] = sys.modules['linquant._compiled'] = None\n"
        "import linquant, threadpoolctl\n"
        "print(linquant.get_backend())\n"
        "print([i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'linquant'])\n"
        "count = linquant.get_num_threads()\n"
        "with threadpoolctl.threadpool_limits(1, user_api='linquant'):  # a known user_api\n"
        "    print(linquant.get_num_threads() == count)\n"
    )
    assert python(code).stdout.split() == ["numpy", "[]", "True"]


def test_a_threadpoolctl_without_register_is_left_alone(python: PythonRun) -> None:
    # threadpoolctl before 3.2 takes no controllers from other libraries
    code = (
        "import sys, types\n"
        "sys.modules['threadpoolctl'] = types.ModuleType('threadpoolctl')\n"
        "import linquant\n"
        "print(linquant.get_num_threads() >= 1)\n"
    )
    assert python(code).stdout.strip() == "True"
