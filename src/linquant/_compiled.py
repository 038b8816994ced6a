"""The compiled backend: the Cython kernels over N-d arrays, on the CPU's widest build, threaded.

Same functions, arguments and results as ``linquant._numpy_backend``. Arrays of any layout
reach the 2-D kernels as strided views (:func:`linquant._layout.slabs`), never as copies;
arrays of at least ``PARALLEL_MIN_SIZE`` elements are split across ``get_num_threads()``
threads. The kernels are built once per instruction-set level (``_kernels_<level>``); the
widest level the CPU runs is chosen at import, or the one ``LINQUANT_CPU`` names.
Importing this module raises ImportError when the extension was not built.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import warnings
from itertools import pairwise
from types import ModuleType
from typing import Any

import numpy as np

from . import _threads
from ._buffers import empty
from ._groups import Grouping, as_3d
from ._kernels_baseline import FAST_BOUND
from ._kernels_baseline import cpu_level as _cpu_level
from ._layout import slabs

LEVELS = ("baseline", "avx2", "avx512")
CPU_ENV_VARIABLE = "LINQUANT_CPU"
# Below this many elements a call stays on one thread: two threads, counting the pool thread's
# wake-up, were no faster up to about this size (bench/NOTES.md).
PARALLEL_MIN_SIZE = 3 << 20
# A call that moves at least this many bytes (input and result) does not fit the caches: its
# result is written with non-temporal stores where the build has them (AVX-512), which saves
# reading the result's cache lines first; a smaller result is left in the cache for its user.
STREAM_MIN_BYTES = 48 << 20


def _built_levels() -> dict[str, ModuleType]:
    """The kernel builds this installation has and this CPU can run, narrowest first."""
    runnable = LEVELS[: _cpu_level() + 1]
    modules = {}
    for level in runnable:
        with contextlib.suppress(ImportError):  # not built for this platform or compiler
            modules[level] = importlib.import_module(f"linquant._kernels_{level}")
    return modules


AVAILABLE = _built_levels()
_kernels: ModuleType = AVAILABLE["baseline"]


def supported_levels() -> tuple[str, ...]:
    """The instruction-set levels this installation can run on this CPU."""
    return tuple(AVAILABLE)


def get_level() -> str:
    """The instruction-set level of the kernels in use."""
    return next(level for level, module in AVAILABLE.items() if module is _kernels)


def set_level(level: str) -> None:
    """Run the kernels built for ``level`` (``"baseline"``, ``"avx2"`` or ``"avx512"``)."""
    global _kernels
    if level not in AVAILABLE:
        raise ValueError(
            f"CPU level must be one of {supported_levels()} on this machine, got {level!r}"
        )
    _kernels = AVAILABLE[level]


def _select_from_environment() -> None:
    requested = os.environ.get(CPU_ENV_VARIABLE, "").strip().lower()
    set_level(list(AVAILABLE)[-1])
    if requested:
        try:
            set_level(requested)
        except ValueError as error:
            warnings.warn(
                f"{CPU_ENV_VARIABLE}={requested!r} ignored, using {get_level()}: {error}",
                RuntimeWarning,
                stacklevel=2,
            )


_select_from_environment()


def _pieces(
    arrays: tuple[np.ndarray, ...],
    params: tuple[np.ndarray, ...],
    block: int,
    parts: int,
    across_groups: bool = False,
) -> list[tuple[np.ndarray, ...]]:
    """``arrays + params`` cut into ``parts`` pieces: along axis 0, or along axis 1 where it
    has fewer rows than parts or ``across_groups`` asks for it (pieces that share no group).

    ``arrays`` are (rows, n, ...) views, ``params`` (rows, groups, ...) views in which element
    ``a`` along axis 1 has group ``a // block``: cuts along axis 1 fall between groups.
    """
    rows, n = arrays[0].shape[:2]
    if rows >= parts and not across_groups:
        edges = np.linspace(0, rows, parts + 1).astype(int).tolist()
        return [tuple(v[a:b] for v in arrays + params) for a, b in pairwise(edges)]
    edges = np.linspace(0, -(-n // block), parts + 1).astype(int).tolist()
    return [
        tuple(v[:, a * block : b * block] for v in arrays) + tuple(p[:, a:b] for p in params)
        for a, b in pairwise(edges)
        if a < b
    ]


def _split(*arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """2-D views covering ``arrays``, cut into one piece per thread when they are large."""
    pieces = [views for _, views in slabs(*arrays, c_order=False)]
    parts = _parts(arrays[0].size)
    if parts == 1:
        return pieces
    return [piece for views in pieces for piece in _pieces(views, (), 1, parts)]


def _parts(size: int) -> int:
    """How many threads a call over ``size`` elements runs on."""
    return 1 if size < PARALLEL_MIN_SIZE else _threads.get_num_threads()


def _streams(source: np.ndarray, result: np.ndarray) -> bool:
    return source.nbytes + result.nbytes >= STREAM_MIN_BYTES


def minmax(x: np.ndarray) -> tuple[np.floating, np.floating, int, int]:
    """Return ``(lo, hi, nan_count, first_nan)``; see ``linquant._numpy_backend.minmax``."""
    wf = x.dtype.type
    results = _threads.run(_kernels.minmax, _split(x))
    lo = wf(min((r[0] for r in results), default=np.inf))
    hi = wf(max((r[1] for r in results), default=-np.inf))
    nan_seen = any(r[2] for r in results)
    nan_count, first_nan = 0, -1
    if nan_seen:  # a second pass, for the error message or nan="zero" only
        for offset, (view,) in slabs(x):
            count, first = _kernels.nan_stats(view)
            if count and not nan_count:
                first_nan = offset + first
            nan_count += count
    return lo, hi, nan_count, first_nan


def quantize(
    x: np.ndarray,
    scale: np.floating,
    zero_point: int,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> bool:
    """Quantize ``x`` into ``out`` (SPEC §2); return True if ``x`` held a NaN (stored as 0.0)."""
    pieces, stream = _split(x, out), _streams(x, out)
    return any(_threads.run(_kernels.quantize, pieces, scale, zero_point, qmin, qmax, stream))


def dequantize(q: np.ndarray, scale: np.floating, zero_point: int, out: np.ndarray) -> None:
    """Dequantize ``q`` into ``out`` (SPEC §3): ``(q - zero_point) * scale``."""
    _threads.run(_kernels.dequantize, _split(q, out), scale, zero_point, _streams(q, out))


# Per-axis and per-block: (outer, n, inner) views around the axis. Large calls are split
# along outer, or along the axis at block boundaries where outer has fewer rows than threads
# (or, for ranges, always: each thread folds into groups of its own): every piece writes its
# own part of the result (and of per-block parameters).


def _split_groups(
    block: int,
    arrays: tuple[np.ndarray, ...],
    params: tuple[np.ndarray, ...],
    across_groups: bool = False,
) -> list[tuple[np.ndarray, ...]]:
    """``arrays + params`` (see :func:`_pieces`) cut into one piece per thread when the call
    is large."""
    parts = _parts(arrays[0].size)
    if parts == 1:
        return [arrays + params]
    return _pieces(arrays, params, block, parts, across_groups)


def _3d(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` as an (outer, n, inner) view; a C-ordered copy for the rare layouts that can't."""
    view = as_3d(a, axis)
    return view if view is not None else as_3d(np.ascontiguousarray(a), axis)  # type: ignore[return-value]


def group_minmax(x: np.ndarray, groups: Grouping) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(lo, hi, nan_seen)``; see ``linquant._numpy_backend.group_minmax``. One pass."""
    wf = x.dtype.type
    lo = np.full(groups.param_shape, np.inf, wf)
    hi = np.full(groups.param_shape, -np.inf, wf)
    if x.size == 0:
        return lo, hi, False
    x3 = _3d(x, groups.axis)
    outer, inner = x3.shape[0], x3.shape[2]
    # Threads fold into ranges of their own: pieces hold whole groups.
    pieces = _split_groups(
        groups.block,
        (x3,),
        (groups.params_3d(lo, outer, inner), groups.params_3d(hi, outer, inner)),
        across_groups=True,
    )
    nan_seen = any(_threads.run(_kernels.group_minmax, pieces, groups.block))
    return lo, hi, nan_seen


def _zero_points(zero_point: np.ndarray, groups: Grouping) -> np.ndarray:
    """int32 zero points of the groups' shape: the array itself where it has it, else a view."""
    zero_points = np.asarray(zero_point, np.int32)
    if zero_points.shape == groups.param_shape:
        return zero_points
    return np.broadcast_to(zero_points, groups.param_shape)


def _run_grouped(
    kernel: Any,
    source: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    out: np.ndarray,
    groups: Grouping,
    *args: object,
) -> list[Any]:
    """``kernel(source3, out3, scale3, zero_point3, block, *args)`` over pieces of rows.

    The arrays go as (outer, n, inner) views around the axis and the parameters (zero points
    of the groups' shape, int32 or as the kernel takes them) as (outer, blocks, inner) views,
    never broadcast into arrays of the source's size; an ``out`` whose strides allow no such
    view is written through a temporary.
    """
    if source.size == 0:
        return []
    target, out3 = out, as_3d(out, groups.axis)
    if out3 is None:
        target = np.empty(out.shape, out.dtype)
        out3 = _3d(target, groups.axis)
    source3 = _3d(source, groups.axis)
    outer, inner = source3.shape[0], source3.shape[2]
    pieces = _split_groups(
        groups.block,
        (source3, out3),
        (
            groups.params_3d(np.asarray(scale), outer, inner),
            groups.params_3d(zero_point, outer, inner),
        ),
    )
    results = _threads.run(kernel, pieces, groups.block, *args)
    if target is not out:
        out[...] = target
    return results


def group_quantize(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    qmin: int,
    qmax: int,
    out: np.ndarray,
    groups: Grouping,
) -> bool:
    """Quantize with each group's parameters; see ``linquant._numpy_backend``."""
    stream = _streams(x, out)
    inner = math.prod(x.shape[groups.axis + 1 :])
    if zero_point.dtype == out.dtype and groups.block > 1 and inner == 1:
        # Blocks along the innermost axis with zero points of the code type, as ONNX gives
        # them: read in place, sparing an int32 copy (a pass over every block's zero point).
        return any(
            _run_grouped(
                _kernels.block_quantize, x, scale, zero_point, out, groups, qmin, qmax, stream
            )
        )
    zero_points = _zero_points(zero_point, groups)
    fast = _changing(groups, inner) and _within(zero_points, qmin, qmax)
    nan_seen = _run_grouped(
        _kernels.group_quantize, x, scale, zero_points, out, groups, qmin, qmax, fast, stream
    )
    return any(nan_seen)


def _changing(groups: Grouping, inner: int) -> bool:
    """Whether parameters change within a run: the only runs whose kernels read ``fast``
    (runs of whole blocks check their own zero points, sparing a pass over them)."""
    return groups.block == 1 or inner > 1


def _within(zero_points: np.ndarray, qmin: int, qmax: int) -> bool:
    """Whether every zero point keeps the kernels' fast form: ``qmin - zero_point`` and
    ``qmax - zero_point`` within ``FAST_BOUND``."""
    return zero_points.size == 0 or (
        qmin - int(zero_points.max()) >= -FAST_BOUND and qmax - int(zero_points.min()) <= FAST_BOUND
    )


def group_dequantize(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, out: np.ndarray, groups: Grouping
) -> None:
    """Dequantize with each group's parameters."""
    zero_points = _zero_points(zero_point, groups)
    inner = math.prod(q.shape[groups.axis + 1 :])
    # q - zero_point fits int32 for every code when the zero point is within FAST_BOUND.
    fast = _changing(groups, inner) and _within(zero_points, 0, 0)
    _run_grouped(
        _kernels.group_dequantize, q, scale, zero_points, out, groups, fast, _streams(q, out)
    )


def block_dynamic_quantize(
    x: np.ndarray,
    groups: Grouping,
    bits: int,
    signed: bool,
    include_zero: bool,
    nan_raises: bool,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Dynamic quantization of groups that are runs of ``x`` (``Grouping.as_runs``: blocks
    along the innermost axis, channels along the outermost) in one read of ``x``.

    Returns the scales and zero points, or None where this does not apply (other layouts)
    or must not decide (a block whose parameters raise, a NaN with ``nan_raises``): the
    general path then runs, and raises with its messages.
    """
    x_runs, out_runs = groups.as_runs(x), groups.as_runs(out)
    if x_runs is None or out_runs is None:
        return None
    scale = empty(groups.param_shape, x.dtype)  # pooled: fresh pages cost as much as the pass
    zero_point = empty(groups.param_shape, np.int32)
    run = groups.run_length
    pieces = _split_groups(
        run,
        (x_runs, out_runs),
        (groups.params_as_runs(scale), groups.params_as_runs(zero_point)),
    )
    stream = _streams(x, out)
    arguments = (run, bits, signed, include_zero, nan_raises, qmin, qmax, stream)
    if x.size and not all(_threads.run(_kernels.block_dynamic_quantize, pieces, *arguments)):
        return None
    return scale, zero_point
