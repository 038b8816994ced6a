"""Memory safety and state: the result pool, huge block sizes, the kernels' own argument checks,
``out=`` apart from every argument, threads reconfigured mid-call, immutable results."""

from __future__ import annotations

import copy
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import linquant as lq
from linquant._backend import available_backends

MB = 1 << 20


@pytest.fixture
def level_configs() -> Iterator[list[tuple[str, str | None]]]:
    """Every (backend, CPU level) this machine runs; restores the settings afterwards."""
    previous = lq.get_backend()
    configs: list[tuple[str, str | None]] = [("numpy", None)]
    if "cython" in available_backends():
        from linquant import _compiled

        previous_level = _compiled.get_level()
        configs += [("cython", level) for level in _compiled.supported_levels()]
    yield configs
    lq.set_backend(previous)
    if "cython" in available_backends():
        _compiled.set_level(previous_level)


def _select(backend: str, level: str | None) -> None:
    lq.set_backend(backend)
    if level is not None:
        from linquant import _compiled

        _compiled.set_level(level)


# The result pool


needs_pool = pytest.mark.skipif(
    "cython" not in available_backends(),
    reason="the pool is part of the compiled build, which this installation lacks "
    "(LINQUANT_DISABLE_CEXT=1)",
)


@needs_pool
def test_a_pooled_result_owns_its_memory_whatever_walks_its_base() -> None:
    # A memoryview base could be released while the array lived, handing its memory to the
    # next result of that size (and freeing it later under the array).
    a = lq.quantize_linear(np.ones(4 * MB, np.float32), 0.01, 0)
    chain = []
    base = a.base
    while base is not None:
        chain.append(base)
        base = getattr(base, "base", None)
    for link in chain:
        if isinstance(link, memoryview):
            link.release()
        for name in ("release", "close"):
            if callable(getattr(link, name, None)):
                getattr(link, name)()
    b = lq.quantize_linear(np.full(4 * MB, 2.0, np.float32), 0.01, 0)
    assert not np.may_share_memory(a, b)
    assert a.__array_interface__["data"][0] != b.__array_interface__["data"][0]
    assert (a == 100).all() and (b == 200).all()


@needs_pool
def test_pool_limit_clear_and_disable() -> None:
    from linquant import _buffers

    previous = lq.get_pool_limit()
    assert previous == 1 << 30
    try:
        lq.clear_pool()
        q = lq.quantize_linear(np.ones(MB, np.float32), 0.5, 0)
        nbytes = q.nbytes
        del q
        assert sum(_buffers.pooled_sizes()) >= nbytes
        assert lq.clear_pool() >= nbytes
        assert _buffers.pooled_sizes() == []
        lq.set_pool_limit(0)  # off: freed results go back to the system at once
        lq.quantize_linear(np.ones(MB, np.float32), 0.5, 0)  # freed at once
        assert _buffers.pooled_sizes() == []
        lq.set_pool_limit(4 * MB)
        results = [lq.quantize_linear(np.ones(n * MB, np.float32), 0.5, 0) for n in (1, 2, 3)]
        del results
        assert sum(_buffers.pooled_sizes()) <= 4 * MB
        assert lq.get_pool_limit() == 4 * MB
        lq.set_pool_limit(0)  # a lower limit frees what no longer fits, now
        assert _buffers.pooled_sizes() == []
        for bad in (-1, 1.5, True, "1"):
            with pytest.raises(ValueError, match="pool limit"):
                lq.set_pool_limit(bad)  # type: ignore[arg-type]
    finally:
        lq.set_pool_limit(previous)


@needs_pool
def test_a_bad_limit_leaves_the_pool_usable() -> None:
    from linquant import _buffers

    for bad in (-1, 2**64):
        with pytest.raises(OverflowError):
            _buffers.set_limit(bad)
    assert isinstance(_buffers.pooled_sizes(), list)  # the lock is free: this returns
    assert lq.quantize_linear(np.ones(MB, np.float32), 0.5, 0).nbytes == MB


@needs_pool
def test_clearing_the_pool_returns_memory_to_the_system() -> None:
    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/statm (Linux only); the pool's code is the same elsewhere")
    lq.clear_pool()
    before = resident()
    results = [lq.quantize_linear(np.ones(16 * MB, np.float32), 0.5, 0) for _ in range(4)]
    del results
    assert resident() - before > 32 * MB  # pooled: still resident
    lq.clear_pool()
    assert resident() - before < 8 * MB


def test_pool_limit_from_the_environment(python) -> None:  # type: ignore[no-untyped-def]
    code = "import linquant as lq; print(lq.get_pool_limit())"
    expected = "12345" if "cython" in available_backends() else "0"
    assert python(code, LINQUANT_POOL_LIMIT="12345").stdout.strip() == expected
    bad = python(code, LINQUANT_POOL_LIMIT="lots")
    assert "LINQUANT_POOL_LIMIT='lots' ignored" in bad.stderr


# Block sizes past the axis, up to ONNX's int64 attribute


@pytest.mark.parametrize("block_size", [2**59, 2**62, sys.maxsize])
def test_a_block_size_past_the_axis_is_one_block(
    block_size: int, level_configs: list[tuple[str, str | None]]
) -> None:
    x = np.random.default_rng(1).normal(size=(3, 1000)).astype(np.float32)
    expected = lq.quantize(x, axis=1, block_size=1000)
    for config in level_configs:
        _select(*config)
        qa = lq.quantize(x, axis=1, block_size=block_size)
        np.testing.assert_array_equal(qa.data, expected.data)
        np.testing.assert_array_equal(qa.scale, expected.scale)
        given = lq.quantize_linear(
            x, qa.scale, qa.zero_point, axis=1, block_size=block_size, dtype="uint8"
        )
        np.testing.assert_array_equal(given, expected.data)
        np.testing.assert_array_equal(qa.dequantize(), expected.dequantize())


@pytest.mark.parametrize("block_size", [2**63, 2**64 + 5, 10**30])
def test_block_sizes_beyond_int64_raise_value_error(
    block_size: int, level_configs: list[tuple[str, str | None]]
) -> None:
    x = np.ones((2, 8), np.float32)
    for config in level_configs:
        _select(*config)
        with pytest.raises(ValueError, match="block_size must be a positive int"):
            lq.quantize(x, axis=1, block_size=block_size)
        with pytest.raises(ValueError, match="block_size must be a positive int"):
            lq.quantize_linear(x, np.ones((2, 1)), 0, axis=1, block_size=block_size)
        with pytest.raises(ValueError, match="block_size must be a positive int"):
            lq.dequantize_linear(
                np.ones((2, 8), np.uint8), np.ones((2, 1)), 0, axis=1, block_size=block_size
            )


# The kernels check the views they are handed


def _bad_kernel_calls(kernels: ModuleType) -> dict[str, Callable[[], object]]:
    """Calls whose views disagree with what the kernel would index: blocks of 32 of 2 x 64."""
    x = np.ones((2, 64, 1), np.float32)
    out = np.empty((2, 64, 1), np.uint8)
    scale = np.ones((2, 2, 1), np.float32)
    zero_point = np.zeros((2, 2, 1), np.int32)
    dynamic = (32, 8, False, True, True, 0, 255, False, 0, 0)
    at2, at3 = (0, 0, 0), (0, 0, 0, 0)  # no stochastic indices
    return {
        "short out": lambda: kernels.quantize(
            x[:, :, 0], out[:1, :, 0], at2, 1.0, 0, 0, 255, False, 0, 0
        ),
        "short scale": lambda: kernels.group_quantize(
            x, out, at3, scale[:, :1], zero_point, 32, 0, 255, True, False, 0, 0
        ),
        "blocks too small": lambda: kernels.group_quantize(
            x, out, at3, scale, zero_point, 16, 0, 255, True, False, 0, 0
        ),
        "zero block": lambda: kernels.group_minmax(x, scale.copy(), scale.copy(), 0),
        "code zero points": lambda: kernels.block_quantize(
            x, out, at3, scale, np.zeros((2, 1, 1), np.uint8), 32, 0, 255, False, 0, 0
        ),
        "dequantize out": lambda: kernels.group_dequantize(
            out, x[:, :32], scale, zero_point, 32, True, False
        ),
        "dynamic scale": lambda: kernels.block_dynamic_quantize(
            x[:, :, 0], out[:, :, 0], at2, scale[:, :1, 0], zero_point[:, :, 0], *dynamic
        ),
        "partial items": lambda: kernels.minmax(as_strided(x[0, :, 0], (2, 4), (6, 4))),
        "unknown rounding": lambda: kernels.quantize(
            x[:, :, 0], out[:, :, 0], at2, 1.0, 0, 0, 255, False, 7, 0
        ),
        "short index": lambda: kernels.group_quantize(
            x, out, at2, scale, zero_point, 32, 0, 255, True, False, 6, 0
        ),
        "well formed": lambda: kernels.group_quantize(
            x, out, at3, scale, zero_point, 32, 0, 255, True, False, 6, 0
        ),
    }


@pytest.mark.skipif(
    "cython" not in available_backends(),
    reason="no compiled kernels in this installation (LINQUANT_DISABLE_CEXT=1): they are what "
    "this checks",
)
@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
@pytest.mark.parametrize("call", list(_bad_kernel_calls(np)))
def test_kernels_refuse_views_they_would_index_out_of_bounds(level: str, call: str) -> None:
    from linquant import _compiled

    if level not in _compiled.AVAILABLE:
        pytest.skip(f"this CPU does not run the {level} build, so no call can reach it here")
    run = _bad_kernel_calls(_compiled.AVAILABLE[level])[call]
    if call == "well formed":  # the checks let what the API passes through
        assert run() is False
        return
    with pytest.raises(
        ValueError,
        match=r"has shape|partial items|block must be positive|unknown rounding|index must be",
    ):
        run()


# out= apart from every argument


def test_out_overlapping_scale_or_zero_point_is_refused(backend: str) -> None:
    # The compiled kernels read per-block parameters in place while they write out=.
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)  # blocks of 16: (2, 2)
    memory = np.full(16, 0.01, np.float32)
    with pytest.raises(ValueError, match="out must not overlap scale"):
        lq.quantize_linear(
            x,
            memory[:4].reshape(2, 2),
            0,
            axis=1,
            block_size=16,
            out=memory.view(np.uint8).reshape(2, 32),
        )
    codes = np.zeros(64, np.uint8)
    with pytest.raises(ValueError, match="out must not overlap zero_point"):
        lq.quantize_linear(
            x,
            np.full((2, 2), 0.01),
            codes[60:].reshape(2, 2),
            axis=1,
            block_size=16,
            out=codes.reshape(2, 32),
        )
    floats = np.ones(64, np.float32)
    with pytest.raises(ValueError, match="out must not overlap scale"):
        lq.dequantize_linear(
            np.zeros((2, 32), np.uint8),
            floats[60:].reshape(2, 2),
            0,
            axis=1,
            block_size=16,
            out=floats.reshape(2, 32),
        )


# Threads reconfigured while others compute


@pytest.mark.skipif(
    "cython" not in available_backends(),
    reason="no compiled kernels, so no thread pool, in this installation (LINQUANT_DISABLE_CEXT=1)",
)
def test_set_num_threads_while_other_threads_compute() -> None:
    from linquant import _compiled

    previous = lq.get_num_threads()
    x = np.linspace(-1, 1, _compiled.PARALLEL_MIN_SIZE, dtype=np.float32)
    expected = lq.quantize_linear(x, 0.01, 128)
    errors: list[BaseException] = []
    calls = []
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                assert np.array_equal(lq.quantize_linear(x, 0.01, 128), expected)
            except BaseException as error:  # every failure is a finding
                errors.append(error)
                return
            calls.append(1)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        flips, start = 0, time.monotonic()
        while not errors and (len(calls) < 20 or time.monotonic() - start < 1.0):
            lq.set_num_threads(1 + flips % 4)
            flips += 1
            if time.monotonic() - start > 30:
                break
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        lq.set_num_threads(previous)
    assert errors == []
    assert len(calls) >= 20


# Immutable results


@pytest.mark.parametrize(
    "clone", [lambda qa: pickle.loads(pickle.dumps(qa)), copy.deepcopy, copy.copy]
)
def test_copies_of_a_quantized_array_stay_read_only(clone) -> None:  # type: ignore[no-untyped-def]
    qa = lq.quantize(np.arange(12.0).reshape(3, 4), axis=1, block_size=2)
    back = clone(qa)
    for name in ("data", "scale", "zero_point"):
        array = getattr(back, name)
        assert not array.flags.writeable, name
        np.testing.assert_array_equal(array, getattr(qa, name))
    assert (back.bits, back.scheme, back.axis, back.block_size, back.source_dtype) == (
        qa.bits,
        qa.scheme,
        qa.axis,
        qa.block_size,
        qa.source_dtype,
    )


# Parameters the kernels read in place


def _misaligned(values: np.ndarray) -> np.ndarray:
    raw = np.zeros(values.nbytes + 1, np.uint8)
    view = raw[1:].view(values.dtype)
    view[...] = values.ravel()
    return view.reshape(values.shape)


def test_misaligned_parameters_reach_the_kernels_aligned(backend: str) -> None:
    # The compiled kernels read per-axis and per-block parameters as typed items in place: a
    # misaligned array is undefined behaviour there (UBSan reports it), so the checks copy it.
    from linquant import _checks

    scale = _misaligned(np.full(8, 0.01, np.float32))
    zero_point = _misaligned(np.full(8, 128, np.int32))
    assert not scale.flags.aligned and not zero_point.flags.aligned
    assert _checks.scales(scale, (8,), np.float32).flags.aligned
    assert _checks.zero_points(zero_point, (8,)).flags.aligned
    x = np.linspace(-1, 1, 800, dtype=np.float32).reshape(8, 100)
    expected = lq.quantize_linear(x, scale.copy(), zero_point.copy(), axis=0)
    np.testing.assert_array_equal(lq.quantize_linear(x, scale, zero_point, axis=0), expected)
    np.testing.assert_array_equal(
        lq.dequantize_linear(expected, scale, zero_point, axis=0),
        lq.dequantize_linear(expected, scale.copy(), zero_point.copy(), axis=0),
    )
