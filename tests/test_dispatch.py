"""The compiled backend's machinery: CPU levels, threads and allocations (SPEC §6)."""

from __future__ import annotations

import multiprocessing
import os
import tracemalloc
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

import linquant as lq
from linquant._backend import available_backends

if TYPE_CHECKING:
    from tests.conftest import PythonRun

compiled = pytest.importorskip(
    "linquant._compiled",
    reason="the compiled backend is not built (LINQUANT_DISABLE_CEXT=1): its dispatch, levels "
    "and threads are what this file tests",
)

KB, MB = 1 << 10, 1 << 20


def test_widest_supported_level_is_the_default(python: PythonRun) -> None:
    levels = compiled.supported_levels()
    assert levels[0] == "baseline"
    assert set(levels) <= {"baseline", "avx2", "avx512"}
    result = python("import linquant; print(linquant.get_cpu_level())", LINQUANT_CPU="")
    assert result.stdout.strip() == levels[-1]


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_linquant_cpu_forces_a_level(level: str, python: PythonRun) -> None:
    result = python("import linquant; print(linquant.get_cpu_level())", LINQUANT_CPU=level)
    if level in compiled.supported_levels():
        assert result.stdout.strip() == level
    else:  # never run code the CPU cannot: say so once, and use what it can run
        assert result.stdout.strip() == compiled.supported_levels()[-1]
        assert result.stderr.count(f"LINQUANT_CPU={level!r} ignored") == 1


def test_set_level_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError, match="CPU level must be one of"):
        compiled.set_level("sse9")


def test_num_threads_api() -> None:
    previous = lq.get_num_threads()
    try:
        lq.set_num_threads(3)
        assert lq.get_num_threads() == 3
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="number of threads"):
                lq.set_num_threads(bad)  # type: ignore[arg-type]
    finally:
        lq.set_num_threads(previous)


def test_default_threads_honour_omp_num_threads(python: PythonRun) -> None:
    code = "import linquant; print(linquant.get_num_threads())"
    assert python(code, OMP_NUM_THREADS="1").stdout.strip() == "1"
    assert python(code, OMP_NUM_THREADS="3").stdout.strip() == "3"
    default = python(code, OMP_NUM_THREADS="").stdout.strip()
    assert int(default) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("level", compiled.supported_levels())
@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_large_arrays_identical_for_every_level_and_thread_count(
    level: str, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Split across the threads (PARALLEL_MIN_SIZE lowered to 0), with NaN-free awkward values:
    # ties, saturation, ±0, ±inf.
    monkeypatch.setattr(compiled, "PARALLEL_MIN_SIZE", 0)
    rng = np.random.default_rng(threads)
    x = rng.uniform(-300, 300, (700, 513)).astype(np.float32)
    x[::7] = np.round(x[::7]) + 0.5
    x[5, :4] = [0.0, -0.0, np.inf, -np.inf]
    views = [x, x[::-1, ::2], x.T]
    expected = {}
    lq.set_backend("numpy")
    for i, v in enumerate(views):
        expected[i] = (lq.quantize_linear(v, 0.37, 12, dtype="int8"), lq.minmax(v))
    lq.set_backend(available_backends()[0])
    previous_level, previous_threads = compiled.get_level(), lq.get_num_threads()
    try:
        compiled.set_level(level)
        lq.set_num_threads(threads)
        for i, v in enumerate(views):
            codes, (lo, hi) = expected[i]
            np.testing.assert_array_equal(lq.quantize_linear(v, 0.37, 12, dtype="int8"), codes)
            assert lq.minmax(v) == (lo, hi)
            x_hat = (codes.astype(np.float32) - 12) * np.float32(0.37)
            np.testing.assert_array_equal(lq.dequantize_linear(codes, 0.37, 12), x_hat)
    finally:
        compiled.set_level(previous_level)
        lq.set_num_threads(previous_threads)


def _peak_bytes(call: Callable[[], object]) -> int:
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("threads", [1, 2])
def test_quantizing_allocates_only_the_output(threads: int) -> None:
    # 1M float32 values: the compiled backend allocates the 1 MB of codes (from the pool of
    # _buffers, which tracemalloc does not see, or from NumPy) and nothing the size of the
    # input; the NumPy backend needs several temporaries of 4-8 MB, which the measure sees.
    x = np.random.default_rng(0).uniform(-50, 150, MB).astype(np.float32)
    previous = (lq.get_backend(), lq.get_num_threads())
    lq.set_num_threads(threads)
    try:
        lq.set_backend("numpy")
        assert _peak_bytes(lambda: lq.quantize(x)) > 4 * MB
        lq.set_backend("cython")
        lq.quantize(x)  # warm up: the thread pool, caches of NumPy and Python
        for call, output_bytes in [
            (lambda: lq.quantize(x), MB),
            (lambda: lq.dynamic_quantize_linear(x), MB),
            (lambda: lq.quantize_linear(x, 0.5, 3), MB),
            (lambda: lq.quantize(x, bits=12, scheme="symmetric"), 2 * MB),
            (lambda: lq.quantize(x.reshape(1024, 1024), axis=1, block_size=32), MB + 256 * KB),
        ]:
            assert _peak_bytes(call) <= output_bytes + 64 * 1024
    finally:
        lq.set_backend(previous[0])
        lq.set_num_threads(previous[1])


def _quantize_in_child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    x = np.linspace(-1, 1, compiled.PARALLEL_MIN_SIZE * 2, dtype=np.float32)
    queue.put(lq.quantize_linear(x, 0.01, 100).sum())


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_threads_work_after_fork() -> None:
    # A forked child has none of its parent's pool threads; the pool must be made anew there.
    x = np.linspace(-1, 1, compiled.PARALLEL_MIN_SIZE * 2, dtype=np.float32)
    previous = lq.get_num_threads()
    lq.set_num_threads(2)
    try:
        expected = lq.quantize_linear(x, 0.01, 100).sum()  # the parent's pool is running
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_quantize_in_child, args=(queue,))
        child.start()
        assert queue.get(timeout=60) == expected
        child.join(timeout=60)
        assert child.exitcode == 0
    finally:
        lq.set_num_threads(previous)


@pytest.mark.parametrize("level", compiled.supported_levels())
def test_streamed_large_results_are_exact(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Large results are written with non-temporal stores where the build has them: whole
    # aligned cache lines by hand-written code, the ends of each row by the plain loop. Odd
    # sizes, an output that starts off a cache line, ties, saturation and NaN under nan="zero"
    # must all give the reference's bits, for every code type.
    monkeypatch.setattr(compiled, "STREAM_MIN_BYTES", 0)
    rng = np.random.default_rng(11)
    x = rng.uniform(-40000, 40000, (1 << 20) + 37).astype(np.float32)
    x[::101] = np.round(x[::101]) + 0.5
    x[[3, 5000, len(x) - 2]] = np.nan
    previous = (lq.get_backend(), compiled.get_level())
    try:
        for dtype, zero_point in [("uint8", 100), ("int8", -3), ("uint16", 30000), ("int16", 7)]:
            lq.set_backend("numpy")
            expected = lq.quantize_linear(x, 0.75, zero_point, dtype=dtype, nan="zero")
            expected_x_hat = lq.dequantize_linear(expected, 0.75, zero_point)
            lq.set_backend("cython")
            compiled.set_level(level)
            q = lq.quantize_linear(x, 0.75, zero_point, dtype=dtype, nan="zero")
            np.testing.assert_array_equal(q, expected)
            shifted = np.empty(len(x) + 3, dtype)[3:]  # off the cache-line grid
            lq.quantize_linear(x, 0.75, zero_point, dtype=dtype, nan="zero", out=shifted)
            np.testing.assert_array_equal(shifted, expected)
            with pytest.raises(ValueError, match="3 NaN values, the first at index \\(3,\\)"):
                lq.quantize_linear(x, 0.75, zero_point, dtype=dtype)
            np.testing.assert_array_equal(lq.dequantize_linear(q, 0.75, zero_point), expected_x_hat)
            compiled.set_level(previous[1])
    finally:
        lq.set_backend(previous[0])
        compiled.set_level(previous[1])


@pytest.mark.parametrize("level", compiled.supported_levels())
@pytest.mark.parametrize("stream", [False, True])
def test_parameters_per_element_are_exact(
    level: str, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Per-axis along the innermost axis: a scale and zero point per element of each row, by the
    # vector loops where the build has them, several rows per call. Rows of 16k + r values
    # (whole vectors and a masked rest) or of whole cache lines, 9 rows (a call of 8 and one of
    # 1), a shared or per-element zero point, ties, saturation, NaN under nan="zero" (its call's
    # rows redone), an output off the cache-line grid and every code type must give the
    # reference's bits; so must blocks along the outer axis, whose rows share parameters.
    monkeypatch.setattr(compiled, "STREAM_MIN_BYTES", 0 if stream else 1 << 62)
    rng = np.random.default_rng(12)
    cases = [
        (width, dtype, low, high, call)
        for width in (16 * 7 + 5, 16 * 8)
        for dtype, low, high in [("uint8", 0, 256), ("int8", -128, 128), ("int16", -9, 9)]
        for call in ({"axis": 1}, {"axis": 0, "block_size": 3})
    ]
    previous = (lq.get_backend(), compiled.get_level())
    try:
        for width, dtype, low, high, blocks in cases:
            x = rng.uniform(-40000, 40000, (9, width)).astype(np.float32)
            x[:, ::13] = np.round(x[:, ::13]) + 0.5
            x[4, 17] = np.nan
            shape = (3, width) if "block_size" in blocks else (width,)
            scale = rng.uniform(0.25, 4, shape).astype(np.float32)
            for zero_point in (int(low), rng.integers(low, high, shape).astype(dtype)):
                call = {**blocks, "dtype": dtype, "nan": "zero"}
                lq.set_backend("numpy")
                expected = lq.quantize_linear(x, scale, zero_point, **call)
                expected_x_hat = lq.dequantize_linear(expected, scale, zero_point, **blocks)
                lq.set_backend("cython")
                compiled.set_level(level)
                q = lq.quantize_linear(x, scale, zero_point, **call)
                np.testing.assert_array_equal(q, expected)
                shifted = np.empty(x.size + 3, dtype)[3:].reshape(x.shape)
                lq.quantize_linear(x, scale, zero_point, **call, out=shifted)
                np.testing.assert_array_equal(shifted, expected)
                x_hat = lq.dequantize_linear(q, scale, zero_point, **blocks)
                np.testing.assert_array_equal(x_hat, expected_x_hat)
                compiled.set_level(previous[1])
    finally:
        lq.set_backend(previous[0])
        compiled.set_level(previous[1])


def test_pooled_results_live_while_any_view_does() -> None:
    # Results of MIN_POOLED_BYTES or more come from a pool; their memory goes back only when
    # the last view of it is gone, and the next result of that size reuses it.
    from linquant import _buffers

    size = _buffers.MIN_POOLED_BYTES
    x = np.linspace(-1, 1, size, dtype=np.float32)
    q = lq.quantize_linear(x, 0.01, 100)
    address = q.__array_interface__["data"][0]
    view = q[::-3]
    expected = view.copy()
    del q
    other = lq.quantize_linear(-x, 0.01, 100)  # same size, while a view of q is alive
    assert other.__array_interface__["data"][0] != address
    np.testing.assert_array_equal(view, expected)
    del view
    assert size in _buffers.pooled_sizes()
    again = lq.quantize_linear(x, 0.01, 100)
    assert again.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(again[::-3], expected)


def _grouped_cases(seed: int) -> list[tuple[np.ndarray, int, int | None]]:
    """Arrays with NaN, .5 ties and wide values, and the axis and block layouts to cut them by.

    Rows before the axis, or (one row: a 1-D array, axis 0) the axis itself at block edges;
    blocks of multiples of 16 along the last axis take the vector block loops of lq_kernels.h,
    with non-temporal stores on aligned rows, and the last block shorter.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-300, 300, (37, 29, 5)).astype(np.float32)
    x[::3] = np.round(x[::3]) + 0.5
    x[4, 7, 2] = np.nan
    rows = rng.uniform(-300, 300, (7, 16 * 9 + 5)).astype(np.float32)
    rows[2, 40] = np.nan
    line = rng.uniform(-300, 300, 16 * 13 + 3).astype(np.float32)
    layouts = [(0, None), (1, None), (2, None), (1, 4), (2, 2), (-1, 3)]
    return (
        [(x, axis, block_size) for axis, block_size in layouts]
        + [(rows, 0, None), (rows, 1, 16), (rows, 1, 32), (rows, 0, 2)]
        + [(line, 0, None), (line, 0, 16), (line, 0, 48), (line, 0, 5)]
    )


@pytest.mark.parametrize("threads", [2, 3])
def test_grouped_calls_split_across_threads_are_exact(
    threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Per-axis and per-block calls split their rows across threads when large, or their axis
    # when they have fewer rows than threads, and stream large results; forced here on small
    # arrays, every layout must give the reference's bits.
    monkeypatch.setattr(compiled, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(compiled, "STREAM_MIN_BYTES", 0)
    previous = (lq.get_backend(), lq.get_num_threads())
    try:
        for x, axis, block_size in _grouped_cases(threads):
            groups = {"axis": axis, "block_size": block_size}
            outcomes = []
            for backend, n in [("numpy", 1), ("cython", threads)]:
                lq.set_backend(backend)
                lq.set_num_threads(n)
                qa = lq.quantize(x, nan="zero", **groups)
                given = lq.quantize_linear(x, qa.scale, 7, dtype="int16", nan="zero", **groups)
                outcomes.append((qa.data, qa.scale, qa.zero_point, given, qa.dequantize()))
            for reference, result in zip(*outcomes, strict=True):
                np.testing.assert_array_equal(result, reference, err_msg=f"{groups}")
    finally:
        lq.set_backend(previous[0])
        lq.set_num_threads(previous[1])


@pytest.mark.parametrize(
    "layout",
    [
        lambda a: np.asfortranarray(a),
        lambda a: np.ascontiguousarray(a.transpose(2, 0, 1)).transpose(1, 2, 0),
    ],
    ids=["fortran", "axes permuted"],
)
def test_element_wise_calls_see_any_memory_order_as_few_views(
    layout: Callable[[np.ndarray], np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Quantize, dequantize and minmax do not depend on the order they visit elements in: an
    # array laid out in memory other than in C order is still a few long rows, not one slab
    # per pair of its last two axes (100000 slabs of 2x2 took seconds).
    x = layout(np.random.default_rng(13).normal(size=(4000, 3, 5)).astype(np.float32))
    calls: list[tuple[int, ...]] = []
    kernel = compiled._kernels.quantize

    def counted(view: np.ndarray, *args: object) -> bool:
        calls.append(view.shape)
        return bool(kernel(view, *args))

    monkeypatch.setattr(compiled._kernels, "quantize", counted)
    out = np.empty_like(x, dtype=np.int8)  # the same memory order as x
    q = lq.quantize_linear(x, 0.01, 3, dtype="int8", out=out)
    assert len(calls) <= 3, calls
    lq.set_backend("numpy")
    try:
        np.testing.assert_array_equal(q, lq.quantize_linear(x, 0.01, 3, dtype="int8"))
    finally:
        lq.set_backend("cython")
