"""Stress tests: arrays past 2**31 elements, threads, fork, resident memory.

Every test here is marked ``stress`` and deselected by default (``-m "not stress"`` in
pyproject.toml); ``scripts/stress.sh`` runs them (``pytest -m stress``).

Each test runs its scenario (a ``_scenario_*`` function below) in a new interpreter with a
time limit: a deadlock, even one that holds the GIL, then fails the test with every thread's
stack (faulthandler) instead of hanging the run, and memory and threads end with the
process. The threaded scenarios run for ``LINQUANT_STRESS_SECONDS`` (default 20). The
scenarios past 2**31 elements need about 11 GiB of memory and skip, saying so, where less is
available.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import linquant as lq
from linquant import _backend
from linquant._params import params_per_slice

pytestmark = [
    pytest.mark.stress,
    pytest.mark.skipif(_backend._compiled is None, reason="the compiled backend is not built"),
]

SECONDS = float(os.environ.get("LINQUANT_STRESS_SECONDS", "20"))
GIB = 1 << 30
MIB = 1 << 20
# Past 2**31, and not a multiple of the block size: the last block is short.
HUGE = (1 << 31) + 1000
BLOCK = 32
# Windows compared with the NumPy backend: the head, around element 2**31, and the tail.
WINDOW = 1 << 22
# Above linquant._compiled.PARALLEL_MIN_SIZE: such calls are split across the pool's threads.
THREADED = getattr(_backend._compiled, "PARALLEL_MIN_SIZE", 0) + 4099


def _in_subprocess(scenario: str, timeout: float) -> None:
    """Run ``scenario()`` of this module in a new interpreter; fail if it fails or hangs.

    Past ``timeout - 15`` seconds faulthandler prints every thread's stack and ends it, so a
    deadlock shows where each thread waits.
    """
    code = "\n".join(
        [
            "import faulthandler, importlib.util",
            f"faulthandler.dump_traceback_later({timeout - 15:.0f}, exit=True)",
            f"spec = importlib.util.spec_from_file_location('stress', {__file__!r})",
            "module = importlib.util.module_from_spec(spec)",
            "spec.loader.exec_module(module)",
            f"module.{scenario}()",
        ]
    )
    try:
        run = subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else ""
        pytest.fail(f"{scenario} still running after {timeout:.0f} s\n{stderr[-6000:]}")
    if run.returncode != 0:
        output = (run.stdout + run.stderr)[-12000:]
        pytest.fail(f"{scenario} failed (exit status {run.returncode}):\n{output}", pytrace=False)
    print(run.stdout, end="")  # what the scenario measured: shown by `pytest -rA`


def _meminfo(field: str) -> int | None:
    """A field of /proc/meminfo in bytes, or None where there is none."""
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            name, value = line.split(":", 1)
            if name == field:
                return int(value.split()[0]) * 1024
    return None


def _needs_memory(nbytes: int) -> None:
    available = _meminfo("MemAvailable")
    if available is None:
        pytest.skip("needs /proc/meminfo to tell whether the memory is there")
    if available < nbytes:
        pytest.skip(f"needs {nbytes / GIB:.1f} GiB available, {available / GIB:.1f} GiB is")


@contextlib.contextmanager
def _settings(*, backend: str | None = None, threads: int | None = None) -> Iterator[None]:
    """Switch the backend and thread count for a block, restoring both afterwards."""
    previous = lq.get_backend(), lq.get_num_threads()
    try:
        if backend is not None:
            lq.set_backend(backend)
        if threads is not None:
            lq.set_num_threads(threads)
        yield
    finally:
        lq.set_backend(previous[0])
        lq.set_num_threads(previous[1])


def _levels() -> Iterator[str]:
    """Set each CPU level this machine runs in turn, restoring the level in use afterwards."""
    compiled: Any = _backend._compiled
    previous = compiled.get_level()
    try:
        for level in compiled.supported_levels():
            compiled.set_level(level)
            yield level
    finally:
        compiled.set_level(previous)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, dtype and bytes (so -0.0 differs from 0.0)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# Past 2**31 elements: one thread, so that a single kernel call indexes every element (with
# more, each thread's piece is shorter than 2**31).


def _fill_huge(n: int) -> np.ndarray:
    """``n`` float32 values in [-1, 1), written in place, with planted extremes past 2**31.

    A period of 2**20 + 7 values repeats (odd, so that blocks see every phase); the minimum
    is the last element and the maximum sits just past element 2**31, where only a kernel
    that indexes past 2**31 correctly finds them.
    """
    rng = np.random.default_rng(2**31)
    period = rng.uniform(-1.0, 1.0, (1 << 20) + 7).astype(np.float32)
    x = np.empty(n, np.float32)
    for start in range(0, n, period.size):
        chunk = x[start : start + period.size]
        chunk[:] = period[: chunk.size]
    x[n - 1] = -3.5
    x[(1 << 31) + 5] = 7.25
    x[n - 3] = 5.0  # in the short last block
    return x


def _windows(n: int) -> list[slice]:
    """Block-aligned windows of about WINDOW elements: head, around 2**31, tail."""
    middle = (1 << 31) - WINDOW // 2
    tail = n - WINDOW - n % BLOCK
    return [slice(0, WINDOW), slice(middle, middle + WINDOW), slice(tail, n)]


def _blocks(window: slice) -> slice:
    """The per-block parameters of a block-aligned window."""
    assert window.start % BLOCK == 0
    return slice(window.start // BLOCK, -(-window.stop // BLOCK))


def _scenario_per_tensor_past_2_31() -> None:
    x = _fill_huge(HUGE)
    with _settings(backend="numpy"):
        expected = lq.quantize(np.array([x[-1], x[(1 << 31) + 5]]))  # the planted extremes
    q: lq.QuantizedArray | None = None
    with _settings(backend="cython", threads=1):
        for level in _levels():
            q = None  # one array of codes at a time
            q = lq.quantize(x)
            assert (q.scale, q.zero_point) == (expected.scale, expected.zero_point), level
            for window in _windows(HUGE):
                with _settings(backend="numpy"):
                    reference = lq.quantize_linear(x[window], q.scale, q.zero_point)
                assert _same_bits(q.data[window], reference), (level, window)
        assert q is not None
        codes, scale, zero_point = q.data, q.scale, q.zero_point
        out = x  # the input is done with: its memory takes the dequantized values
        for level in _levels():
            assert lq.dequantize_linear(codes, scale, zero_point, out=out) is out
            for window in _windows(HUGE):
                with _settings(backend="numpy"):
                    reference = lq.dequantize_linear(codes[window], scale, zero_point)
                assert _same_bits(out[window], reference), (level, window)


def test_per_tensor_past_2_31_elements_matches_numpy() -> None:
    """Per-tensor quantize (dynamic) and dequantize of 2**31 + 1000 float32 on every CPU
    level: the range found past 2**31, the codes and values bit-identical to the NumPy
    backend's on the head, around 2**31 and on the tail."""
    _needs_memory(HUGE * 5 + GIB)  # the input (reused for the output) and the codes
    _in_subprocess("_scenario_per_tensor_past_2_31", timeout=900)


def _scenario_per_block_past_2_31() -> None:
    x = _fill_huge(HUGE)
    windows = _windows(HUGE)
    with _settings(backend="cython", threads=1):
        q: lq.QuantizedArray | None = None
        for level in _levels():
            q = None
            q = lq.quantize(x, axis=-1, block_size=BLOCK)
            assert q.scale.shape == (-(-HUGE // BLOCK),)
            scale, zero_point = np.asarray(q.scale), np.asarray(q.zero_point)
            for window in windows:
                with _settings(backend="numpy"):
                    reference = lq.quantize(x[window], axis=-1, block_size=BLOCK)
                blocks = _blocks(window)
                assert _same_bits(q.data[window], reference.data), (level, window)
                assert _same_bits(scale[blocks], np.asarray(reference.scale)), (level, window)
                assert _same_bits(zero_point[blocks], np.asarray(reference.zero_point)), level
        assert q is not None
        dynamic = [q.data[window].copy() for window in windows]
        q = None  # the given-parameter codes take the dynamic ones' place
        codes: np.ndarray | None = None
        for level in _levels():
            codes = None
            codes = lq.quantize_linear(x, scale, zero_point, axis=-1, block_size=BLOCK)
            for window, expected in zip(windows, dynamic, strict=True):
                assert _same_bits(codes[window], expected), (level, window)
        assert codes is not None
        out = x
        for level in _levels():
            lq.dequantize_linear(codes, scale, zero_point, axis=-1, block_size=BLOCK, out=out)
            for window in windows:
                blocks = _blocks(window)
                with _settings(backend="numpy"):
                    values = lq.dequantize_linear(
                        codes[window], scale[blocks], zero_point[blocks], axis=-1, block_size=BLOCK
                    )
                assert _same_bits(out[window], values), (level, window)


def test_per_block_past_2_31_elements_matches_numpy() -> None:
    """Per-block quantize of 2**31 + 1000 float32 in blocks of 32 along the last axis
    (dynamic, then with those parameters given) and dequantize, on every CPU level:
    bit-identical to the NumPy backend on the windows, parameters of their blocks equal."""
    _needs_memory(HUGE * 5 + 2 * GIB)  # the input, the codes, the parameters
    _in_subprocess("_scenario_per_block_past_2_31", timeout=900)


# Per axis: rows of COLUMNS values, past 2**31 elements in all. Along axis 1 each column has
# its parameters (8 rows per kernel call share them); along axis 0 each row is one run.
COLUMNS = 4096
ROWS = (1 << 31) // COLUMNS + 1


def _row_windows() -> list[slice]:
    """Windows of WINDOW // COLUMNS rows: the head, around element 2**31, the tail."""
    rows = WINDOW // COLUMNS
    middle = (1 << 31) // COLUMNS - rows // 2
    return [slice(0, rows), slice(middle, middle + rows), slice(ROWS - rows, ROWS)]


def _scenario_per_axis_past_2_31() -> None:
    x = _fill_huge(ROWS * COLUMNS).reshape(ROWS, COLUMNS)
    zero = np.float32(0.0)  # -0.0 bounds as +0.0, as the API makes them
    scale, zero_point = params_per_slice(  # SPEC §4 from NumPy's ranges, no temporaries of x
        x.min(axis=0) + zero, x.max(axis=0) + zero, 8, False, True, str
    )
    with _settings(backend="cython", threads=1):
        for level in _levels():
            q: Any = None  # one array of codes at a time
            q = lq.quantize(x, axis=1)
            assert _same_bits(np.asarray(q.scale), scale), level
            assert _same_bits(np.asarray(q.zero_point), zero_point), level
            q = None
            q = lq.quantize_linear(x, scale, zero_point.astype(np.uint8), axis=1)
            for window in _row_windows():
                with _settings(backend="numpy"):
                    reference = lq.quantize_linear(
                        x[window], scale, zero_point.astype(np.uint8), axis=1
                    )
                assert _same_bits(q[window], reference), (level, window)
            q = None
            q = lq.quantize(x, axis=0)
            for window in _row_windows():
                with _settings(backend="numpy"):
                    rows = lq.quantize(x[window], axis=0)
                assert _same_bits(q.data[window], rows.data), (level, window)
                assert _same_bits(np.asarray(q.scale)[window], np.asarray(rows.scale)), level
                assert _same_bits(np.asarray(q.zero_point)[window], np.asarray(rows.zero_point))


def test_per_axis_past_2_31_elements_matches_numpy() -> None:
    """Per-axis quantize of 2**31 + 4096 float32 as 4096 columns, on every CPU level: along
    axis 1 (dynamic: every column's range; then with those parameters given) and along axis 0
    (dynamic, each row one run), bit-identical to the NumPy backend on the head, around
    2**31 and on the tail."""
    _needs_memory(ROWS * COLUMNS * 5 + 2 * GIB)  # the input, the codes
    _in_subprocess("_scenario_per_axis_past_2_31", timeout=900)


# Threads, fork and memory.


def _calls(rng: np.random.Generator) -> list[tuple[Callable[[], np.ndarray], np.ndarray]]:
    """Calls large enough to be split across threads, with their results computed now."""
    xs = [rng.normal(size=THREADED + 977 * k).astype(np.float32) for k in range(3)]
    q = lq.quantize(xs[0])
    blocks = lq.quantize(xs[1], axis=0, block_size=64, scheme="symmetric")
    calls: list[Callable[[], np.ndarray]] = [
        lambda: lq.quantize(xs[0]).data,
        lambda: lq.dequantize_linear(q.data, q.scale, q.zero_point),
        lambda: lq.quantize(xs[1], axis=0, block_size=64, scheme="symmetric").data,
        lambda: blocks.dequantize(),
        lambda: lq.quantize_linear(xs[2], 0.01, 3, dtype="int16"),
    ]
    return [(call, call().copy()) for call in calls]


def _scenario_threads() -> None:
    calls = _calls(np.random.default_rng(8))
    stop = threading.Event()
    errors: list[str] = []
    counts = [0] * 8

    def call_in_turn(index: int) -> None:
        turn = index
        try:
            while not stop.is_set():
                call, expected = calls[turn % len(calls)]
                if not _same_bits(call(), expected):
                    errors.append(f"thread {index}: call {turn % len(calls)} differs")
                    return
                counts[index] += 1
                turn += 1
        except Exception:
            errors.append(f"thread {index}:\n{traceback.format_exc()}")

    def change_thread_count() -> None:
        n = 0
        try:
            while not stop.is_set():
                lq.set_num_threads(n % 4 + 1)
                n += 1
                time.sleep(0.002)
        except Exception:
            errors.append(f"set_num_threads:\n{traceback.format_exc()}")

    workers = [threading.Thread(target=call_in_turn, args=(i,)) for i in range(8)]
    workers.append(threading.Thread(target=change_thread_count))
    for worker in workers:
        worker.start()
    time.sleep(SECONDS)
    stop.set()
    for worker in workers:
        worker.join(60)
    assert not any(worker.is_alive() for worker in workers), "a thread did not stop"
    assert not errors, "\n".join(errors[:3]) + f"\n({len(errors)} errors in all)"
    assert all(counts), f"a thread made no call: {counts}"
    print(f"calls per thread: {counts}")


def test_calls_from_many_threads_while_the_thread_count_changes() -> None:
    """Eight threads call the API on arrays that are split across the pool's threads while
    another one keeps changing the thread count: no exception, every result as before."""
    _in_subprocess("_scenario_threads", timeout=SECONDS + 120)


def _wait(pid: int, timeout: float) -> int | None:
    """The exit code of child ``pid``, or None if it still runs after ``timeout`` (then it is
    killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _scenario_fork() -> None:
    # Python 3.12+ warns that forking a process with threads may deadlock: that is under test.
    warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
    rng = np.random.default_rng(3)
    x = rng.normal(size=THREADED).astype(np.float32)
    expected = lq.quantize(x)
    pooled = [rng.normal(size=(1 << 16) + 251 * k).astype(np.float32) for k in range(4)]
    stop = threading.Event()
    errors: list[str] = []

    def take_and_drop(index: int) -> None:
        n = index
        try:
            while not stop.is_set():
                q = lq.quantize(pooled[n % len(pooled)])  # codes of 64 KiB: not pooled; ...
                x_hat = q.dequantize()  # ... float32 of 256 KiB and more: pooled
                del q, x_hat
                n += 1
        except Exception:
            errors.append(f"thread {index}:\n{traceback.format_exc()}")

    workers = [threading.Thread(target=take_and_drop, args=(i,)) for i in range(3)]
    for worker in workers:
        worker.start()
    forks, failures = 0, list[str]()
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline and forks < 500 and not failures:
            pid = os.fork()
            if pid == 0:  # the child: a threaded call with a pooled result, then out
                code = 3
                try:
                    q = lq.quantize(x)
                    same = _same_bits(q.data, expected.data) and q.scale == expected.scale
                    code = 0 if same else 2
                except BaseException:
                    os.write(2, traceback.format_exc().encode())
                finally:
                    os._exit(code)
            forks += 1
            status = _wait(pid, timeout=30)
            if status != 0:
                what = {None: "deadlocked (killed after 30 s)", 2: "wrong result"}
                failures.append(f"child {forks}: {what.get(status, f'exit code {status}')}")
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    assert not failures, failures
    assert not errors, "\n".join(errors)
    assert not any(worker.is_alive() for worker in workers), "a thread did not stop"
    assert forks >= 10, f"only {forks} forks in {SECONDS} s"
    print(f"forks: {forks}")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_other_threads_drop_pooled_results() -> None:
    """The main thread forks again and again while three threads take results from the
    buffer pool and drop them; each child computes a threaded, pooled result and exits. A
    deadlock, in a child or in the parent, fails the test."""
    _in_subprocess("_scenario_fork", timeout=SECONDS + 120)


def _rss() -> int:
    """This process's resident memory in bytes (/proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _scenario_resident_memory() -> None:
    from linquant import _buffers

    rng = np.random.default_rng(5)
    small = rng.normal(size=(8, 125)).astype(np.float32)
    medium = rng.normal(size=(1 << 16)).astype(np.float32)
    large = [rng.normal(size=(1 << 20) + 4096 * k).astype(np.float32) for k in range(3)]
    joined = np.concatenate(large)  # past PARALLEL_MIN_SIZE: split across threads
    q_small = lq.quantize(small)
    calls: list[Callable[[], object]] = [
        lambda: lq.quantize(small),
        lambda: lq.quantize(small, axis=1, scheme="symmetric"),
        lambda: lq.dequantize_linear(q_small.data, q_small.scale, q_small.zero_point),
        lambda: lq.quantize(small, axis=1, block_size=32),
        lambda: lq.quantize_linear(medium, 0.01, 7),
        lambda: lq.quantize(medium).dequantize(),  # float32 of 256 KiB: pooled
        lambda: lq.error_metrics(small, small[::-1]),
    ]
    big: list[Callable[[], object]] = [
        lambda: lq.quantize(large[0]).dequantize(),
        lambda: lq.quantize(large[1], axis=0, block_size=128),
        lambda: lq.quantize_linear(large[2], 0.02, 0, dtype="int16"),
        lambda: lq.quantize(joined),
    ]

    def run(n: int) -> None:
        for i in range(n):
            if i % 50 == 49:
                big[(i // 50) % len(big)]()
            else:
                calls[i % len(calls)]()

    def held() -> int:
        """Resident memory, less the pooled buffers' bytes (the pool is bounded)."""
        sizes = _buffers.pooled_sizes()
        assert len(sizes) <= 8, sizes
        return _rss() - sum(sizes)

    run(10_000)  # warm-up: imports, caches, the pool filled
    start, samples = held(), []
    for _ in range(10):
        run(10_000)
        samples.append(held())
    growth = samples[-1] - start
    trace = ", ".join(f"{(s - start) / MIB:+.1f}" for s in samples)
    assert growth < 50 * MIB, f"resident memory grew by {growth / MIB:.1f} MiB ({trace} MiB)"
    print(f"resident memory after each 10**4 calls, from the start: {trace} MiB")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_resident_memory_stays_flat_over_many_calls() -> None:
    """10**5 calls, small ones and every 50th large (pooled results, threaded): resident
    memory, less what the buffer pool holds, grows by less than 50 MiB after a warm-up."""
    _in_subprocess("_scenario_resident_memory", timeout=600)
