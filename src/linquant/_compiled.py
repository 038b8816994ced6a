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
from collections.abc import Iterator
from itertools import pairwise
from types import ModuleType
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _threads
from ._buffers import empty
from ._formats import BlockType, block_type, check_block_shapes
from ._groups import Grouping, as_3d
from ._histograms import NO_WIDTH, combined
from ._kernels_baseline import FAST_BOUND, ROUNDING_MODES
from ._kernels_baseline import cpu_level as _cpu_level
from ._layout import slabs
from ._rounding import Rounding

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


# Stochastic indices travel with the arrays through slabs, as_3d and the cuts into pieces as
# an index map: a view whose "element" m is at byte offset index_base + sum(m[k] * stride[k])
# of this buffer, so that every transposition, merge and slice of the arrays applies to it
# too. Its memory is never read: only its views' offsets and strides are.
_INDEX_BUFFER = np.zeros(1, np.uint8)
_INDEX_ORIGIN = _INDEX_BUFFER.__array_interface__["data"][0]


def _index_map(rounding: Rounding, shape: tuple[int, ...]) -> np.ndarray:
    """The index map of an array of ``shape`` (C-ordered steps, or those of ``rounding``)."""
    return as_strided(_INDEX_BUFFER, shape, rounding.strides_for(shape), writeable=False)


def _index_maps(rounding: Rounding, a: np.ndarray) -> tuple[np.ndarray, ...]:
    """The index map of ``a``, to cut along with it, where its rounding has indices."""
    return (_index_map(rounding, a.shape),) if rounding.stochastic else ()


def _indexed(rounding: Rounding, pieces: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Pieces of (source, out, [index map,] ...) as the quantize kernels take them: (source,
    out, index, ...), ``index`` the stochastic index of the source's first element and its
    steps (zeros where the mode draws nothing)."""
    if not rounding.stochastic:
        return [(*piece[:2], (0,) * (piece[0].ndim + 1), *piece[2:]) for piece in pieces]
    return [(*piece[:2], _index(rounding, piece[2]), *piece[3:]) for piece in pieces]


def _index(rounding: Rounding, index_map: np.ndarray) -> tuple[int, ...]:
    """(first, steps) of a view of an index map."""
    offset = index_map.__array_interface__["data"][0] - _INDEX_ORIGIN
    return (rounding.index_base + offset, *index_map.strides)


def _rounding_args(rounding: Rounding) -> tuple[int, int]:
    """The kernels' last arguments: the mode's number and the seed."""
    return ROUNDING_MODES[rounding.mode], rounding.seed


def _parts(size: int) -> int:
    """How many threads a call over ``size`` elements runs on."""
    return 1 if size < PARALLEL_MIN_SIZE else _threads.get_num_threads()


def histogram(
    x: np.ndarray, log2_bins: int
) -> tuple[np.floating, np.floating, int, int, np.ndarray]:
    """A histogram of ``|x|``; see ``linquant._numpy_backend.histogram``. Each thread counts
    its part in a histogram of its own, merged exactly after."""

    def run(view: np.ndarray) -> tuple[Any, Any, int, int, np.ndarray]:
        counts = np.zeros(2 << log2_bins, np.int64)
        lo, hi, status, exponent = _kernels.histogram(view, log2_bins, counts, NO_WIDTH)
        return lo, hi, status, exponent, counts

    wf = x.dtype.type
    parts = _threads.run(run, _split(x))
    statuses = {part[2] for part in parts}
    exponent, counts = combined(
        np.array([part[3] for part in parts] or [NO_WIDTH], np.int64),
        np.array([part[4] for part in parts] or [np.zeros(2 << log2_bins, np.int64)]),
    )
    lo = min((part[0] for part in parts), default=wf(np.inf))
    hi = max((part[1] for part in parts), default=wf(-np.inf))
    status = 1 if 1 in statuses else max(statuses, default=0)  # a NaN's, as NumPy's
    return wf(lo), wf(hi), status, exponent, counts


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
    rounding: Rounding,
) -> bool:
    """Quantize ``x`` into ``out`` (SPEC §2); return True if ``x`` held a NaN (stored as 0.0)."""
    pieces = _indexed(rounding, _split(x, out, *_index_maps(rounding, x)))
    arguments = (scale, zero_point, qmin, qmax, _streams(x, out), *_rounding_args(rounding))
    return any(_threads.run(_kernels.quantize, pieces, *arguments))


def dequantize(q: np.ndarray, scale: np.floating, zero_point: int, out: np.ndarray) -> None:
    """Dequantize ``q`` into ``out`` (SPEC §3): ``(q - zero_point) * scale``."""
    _threads.run(_kernels.dequantize, _split(q, out), scale, zero_point, _streams(q, out))


def _row_pairs(a: np.ndarray, b: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """2-D views of the rows of ``a`` and ``b`` (the same shape but the last axis), paired."""
    if a.ndim <= 2 or (a.flags.c_contiguous and b.flags.c_contiguous):  # reshaped as views
        rows = math.prod(a.shape[:-1])
        return [(a.reshape(rows, a.shape[-1]), b.reshape(rows, b.shape[-1]))]
    return [(a[index], b[index]) for index in np.ndindex(*a.shape[:-2])]


def pack(codes: np.ndarray, width: int, out: np.ndarray) -> None:
    """Pack ``codes`` into the bytes ``out`` along the last axis (SPEC §8)."""
    for rows, packed in _row_pairs(codes, out):
        _kernels.pack(rows, width, packed)


def unpack(packed: np.ndarray, width: int, out: np.ndarray) -> None:
    """Unpack the bytes ``packed`` into the codes ``out`` along the last axis (SPEC §8)."""
    for rows, codes in _row_pairs(packed, out):
        _kernels.unpack(rows, width, codes)


def _block_runs(
    values: np.ndarray, blocks: np.ndarray, block: BlockType
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``(first block, values, blocks)`` of runs of whole GGUF blocks, each run one row (one
    kernel call), one run per thread for a large call."""
    check_block_shapes(block, values.shape, blocks.shape)
    by_value = values.reshape(-1, block.block_size)
    by_block = blocks.reshape(-1, block.type_size)
    parts = _parts(values.size)
    edges = [len(by_value) * k // parts for k in range(parts + 1)]
    return [
        (a, by_value[a:b].reshape(1, -1), by_block[a:b].reshape(1, -1))
        for a, b in pairwise(edges)
        if a < b
    ]


def gguf_quantize(x: np.ndarray, ggml_type: int, out: np.ndarray) -> int:
    """Quantize rows of GGUF blocks; see ``linquant._numpy_backend.gguf_quantize``."""

    def run(first: int, values: np.ndarray, blocks: np.ndarray) -> int:
        bad: int = _kernels.gguf_quantize(values, ggml_type, blocks)
        return -1 if bad < 0 else first + bad

    results = _threads.run(run, _block_runs(x, out, block_type(ggml_type)))
    return min((bad for bad in results if bad >= 0), default=-1)


def gguf_dequantize(blocks: np.ndarray, ggml_type: int, out: np.ndarray) -> None:
    """Dequantize rows of GGUF blocks into ``out`` (SPEC §9)."""

    def run(_: int, values: np.ndarray, stored: np.ndarray) -> None:
        _kernels.gguf_dequantize(stored, ggml_type, values)

    _threads.run(run, _block_runs(out, blocks, block_type(ggml_type)))


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
    rounding: Rounding | None = None,
    index_map: np.ndarray | None = None,
) -> list[Any]:
    """``kernel(source3, out3, [index,] scale3, zero_point3, block, *args)`` over pieces of
    rows; quantize kernels (``rounding`` given) take the index, from ``index_map`` (the
    source's, as an (outer, n, inner) view) for stochastic rounding, and the rounding
    arguments.

    The arrays go as (outer, n, inner) views around the axis and the parameters (zero points
    of the groups' shape, int32 or as the kernel takes them) as (outer, blocks, inner) views,
    never broadcast into arrays of the source's size; an ``out`` whose strides allow no such
    view is written through a temporary.
    """
    if source.size == 0:
        return []
    maps = () if index_map is None else (index_map,)
    target, out3 = out, as_3d(out, groups.axis)
    if out3 is None:
        target = np.empty(out.shape, out.dtype)
        out3 = _3d(target, groups.axis)
    source3 = _3d(source, groups.axis)
    outer, inner = source3.shape[0], source3.shape[2]
    pieces = _split_groups(
        groups.block,
        (source3, out3, *maps),
        (
            groups.params_3d(np.asarray(scale), outer, inner),
            groups.params_3d(zero_point, outer, inner),
        ),
    )
    if rounding is not None:
        pieces = _indexed(rounding, pieces)
        args += _rounding_args(rounding)
    results = _threads.run(kernel, pieces, groups.block, *args)
    if target is not out:
        out[...] = target
    return results


def _apart(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    out: np.ndarray,
    groups: Grouping,
    rounding: Rounding,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Grouping, Rounding]]:
    """The arguments of :func:`group_quantize` for each index of the first axis (other than
    the grouping's) longer than one: arrays with one axis fewer, and their groups and
    indices (per-axis parameters are the same for each; per-block ones are taken apart too)."""
    axis = next(k for k, n in enumerate(x.shape) if k != groups.axis and n > 1)
    strides = rounding.strides_for(x.shape)
    shape = x.shape[:axis] + x.shape[axis + 1 :]
    sub_groups = Grouping(shape, groups.axis - (axis < groups.axis), groups.block_size)
    sub_strides = strides[:axis] + strides[axis + 1 :]
    per_block = groups.block_size is not None
    for j in range(x.shape[axis]):
        at = (slice(None),) * axis + (j,)
        base = rounding.index_base + j * strides[axis]
        yield (
            x[at],
            scale[at] if per_block else scale,
            zero_point[at] if per_block else zero_point,
            out[at],
            sub_groups,
            Rounding(rounding.mode, rounding.seed, base, sub_strides),
        )


def group_quantize(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    qmin: int,
    qmax: int,
    out: np.ndarray,
    groups: Grouping,
    rounding: Rounding,
) -> bool:
    """Quantize with each group's parameters; see ``linquant._numpy_backend``."""
    index_map = None
    if rounding.stochastic and x.size:
        # Never _3d: its fallback copies, and an index map's memory is never to be read.
        index_map = as_3d(_index_map(rounding, x.shape), groups.axis)
        if index_map is None:  # steps that do not merge (a box of a larger array in 4-d)
            parts = _apart(x, scale, zero_point, out, groups, rounding)
            results = [
                group_quantize(x_part, scale_part, zero_part, qmin, qmax, out_part, part, where)
                for x_part, scale_part, zero_part, out_part, part, where in parts
            ]
            return any(results)
    stream = _streams(x, out)
    inner = math.prod(x.shape[groups.axis + 1 :])
    if zero_point.dtype == out.dtype and groups.block > 1 and inner == 1:
        # Blocks along the innermost axis with zero points of the code type, as ONNX gives
        # them: read in place, sparing an int32 copy (a pass over every block's zero point).
        return any(
            _run_grouped(
                _kernels.block_quantize,
                x,
                scale,
                zero_point,
                out,
                groups,
                qmin,
                qmax,
                stream,
                rounding=rounding,
                index_map=index_map,
            )
        )
    zero_points = _zero_points(zero_point, groups)
    fast = _changing(groups, inner) and _within(zero_points, qmin, qmax)
    nan_seen = _run_grouped(
        _kernels.group_quantize,
        x,
        scale,
        zero_points,
        out,
        groups,
        qmin,
        qmax,
        fast,
        stream,
        rounding=rounding,
        index_map=index_map,
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
    rounding: Rounding,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Dynamic quantization of groups that are runs of ``x`` (``Grouping.as_runs``: blocks
    along the innermost axis, channels along the outermost) in one read of ``x``.

    Returns the scales and zero points, or None where this does not apply (other layouts, an
    index map that is not runs too) or must not decide (a block whose parameters raise, a NaN
    with ``nan_raises``): the general path then runs, and raises with its messages.
    """
    runs = [groups.as_runs(a) for a in (x, out, *_index_maps(rounding, x))]
    if any(view is None for view in runs):
        return None
    scale = empty(groups.param_shape, x.dtype)  # pooled: fresh pages cost as much as the pass
    zero_point = empty(groups.param_shape, np.int32)
    run = groups.run_length
    pieces = _split_groups(
        run,
        tuple(runs),  # type: ignore[arg-type]
        (groups.params_as_runs(scale), groups.params_as_runs(zero_point)),
    )
    stream = _streams(x, out)
    rounding_args = _rounding_args(rounding)
    arguments = (run, bits, signed, include_zero, nan_raises, qmin, qmax, stream, *rounding_args)
    kernel = _kernels.block_dynamic_quantize
    if x.size and not all(_threads.run(kernel, _indexed(rounding, pieces), *arguments)):
        return None
    return scale, zero_point
