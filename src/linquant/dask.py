"""Quantize and dequantize Dask arrays, chunk by chunk, bit for bit as linquant in memory.

:func:`quantize` gives what :func:`linquant.quantize` gives for the whole array (SPEC §4):
the parameters come from the range of the whole array (or of each channel or block), found by
a tree reduction of each chunk's range (linquant's min/max kernels run on each chunk, on the
workers), and the parameter arithmetic is linquant's own. The parameters are computed when
:func:`quantize` is called, so ``x`` is read once then; the codes stay lazy, and ``x`` is read
again when they are computed (persist ``x`` first if it is costly to produce).

- per tensor: one scale and zero point; any chunking.
- per channel (``axis=``): each chunk gives the range of its slice of every channel; those are
  reduced across the chunks of the other dimensions, and each chunk is quantized with the
  parameters of the channels it holds; any chunking.
- per block (``axis=`` and ``block_size=``): blocks must not straddle chunks, so ``x`` is first
  rechunked along the axis to chunk boundaries that are multiples of ``block_size`` (each
  boundary moved up to the next such multiple; nothing changes where they already are); the
  codes have those chunks.

Each chunk is quantized with its position in the array (SPEC §2.1), so that stochastic
rounding gives the codes of the whole array whatever the chunking.

Needs the ``dask`` extra: ``pip install linquant[dask]``.

>>> import dask.array as da, linquant.dask
>>> x = da.linspace(-1.0, 2.0, 7, chunks=3)
>>> qa = linquant.dask.quantize(x, bits=8)
>>> qa.scale, qa.zero_point
(np.float64(0.011764705882352941), np.int32(85))
>>> qa.data.compute()
array([  0,  43,  85, 127, 170, 213, 255], dtype=uint8)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import dask.array as da
    import dask.base
except ImportError as error:  # pragma: no cover - dask is in the test extra
    raise ImportError("linquant.dask needs dask: pip install 'linquant[dask]'") from error

from . import _rounding
from ._api import (
    dequantize_linear,
    dynamic_settings,
    group_range,
    nan_error,
    quantize_linear,
    range_params,
)
from ._groups import Grouping, grouping
from ._layout import as_float_input, working_float
from ._params import storage_dtype
from ._quantized import FLOAT32, QuantizedArray

# Dask's functions carry no annotations: the few used here, typed.
_asarray: Callable[..., da.Array] = da.asarray
_from_array: Callable[..., da.Array] = da.from_array
_map_blocks: Callable[..., da.Array] = da.map_blocks
_rechunk: Callable[..., da.Array] = da.rechunk
_min: Callable[..., da.Array] = da.min
_max: Callable[..., da.Array] = da.max
_any: Callable[..., da.Array] = da.any
_compute: Callable[..., tuple[Any, ...]] = dask.base.compute


@dataclass(frozen=True, eq=False, repr=False)
class QuantizedDaskArray:
    """Lazy codes (a Dask array) and the NumPy parameters that decode them.

    The fields of :class:`linquant.QuantizedArray`; ``data`` is a Dask array.
    """

    data: da.Array
    scale: np.floating | np.ndarray
    zero_point: np.int32 | np.ndarray
    bits: int
    scheme: str
    axis: int | None = None
    block_size: int | None = None
    source_dtype: np.dtype = FLOAT32
    rounding: str = _rounding.DEFAULT
    seed: int | None = None

    def dequantize(self, dtype: str | np.dtype | type = "float32") -> da.Array:
        """The dequantized array (SPEC §3), lazy, with the chunks of ``data``."""
        out_dtype = np.dtype(dtype)
        return _map_with_params(
            _dequantize_block, self.data, self.scale, self.zero_point, self._grouping(), out_dtype
        )

    def compute(self, **kwargs: Any) -> QuantizedArray:
        """The codes computed (``kwargs`` go to Dask), as a :class:`linquant.QuantizedArray`."""
        (data,) = _compute(self.data, **kwargs)
        return QuantizedArray.with_codes(data, self)

    def _grouping(self) -> Grouping | None:
        return grouping(self.data.shape, self.axis, self.block_size)

    def __repr__(self) -> str:
        groups = "" if self.axis is None else f", axis={self.axis}"
        if self.block_size is not None:
            groups += f", block_size={self.block_size}"
        if self.rounding != _rounding.DEFAULT:
            groups += f", rounding={self.rounding!r}"
        if self.seed is not None:
            groups += f", seed={self.seed}"
        return (
            f"QuantizedDaskArray(shape={self.data.shape}, dtype={self.data.dtype}, "
            f"chunks={self.data.chunksize}, bits={self.bits}, scheme={self.scheme!r}{groups})"
        )


def quantize(
    x: object,
    bits: int = 8,
    scheme: str = "asymmetric",
    *,
    axis: int | None = None,
    block_size: int | None = None,
    include_zero: bool = True,
    narrow_range: bool = False,
    nan: str = "raise",
    rounding: str = _rounding.DEFAULT,
    seed: int | None = None,
) -> QuantizedDaskArray:
    """Quantize a Dask array (or what ``dask.array.asarray`` takes) as :func:`linquant.quantize`.

    The arguments and the results are those of :func:`linquant.quantize` on the whole array,
    bit for bit (stochastic rounding included: each chunk is quantized with its position in
    the array); the parameters are computed now (one read of ``x``), the codes lazily.
    NaN raises ValueError (how many, where the first is, in which channel or block) unless
    ``nan="zero"``.

    >>> import dask.array as da, numpy as np, linquant as lq, linquant.dask
    >>> x = np.linspace(-1.0, 2.0, 10)
    >>> qa = linquant.dask.quantize(da.from_array(x, chunks=3), rounding="stochastic", seed=7)
    >>> bool((qa.data.compute() == lq.quantize(x, rounding="stochastic", seed=7).data).all())
    True
    """
    arr = _asarray(x)
    n_bits, signed, nan, _, _ = dynamic_settings(bits, scheme, nan, include_zero, narrow_range)
    checked_rounding = _rounding.rounding(rounding, seed, None, arr.shape)
    checked_seed = checked_rounding.seed if checked_rounding.stochastic else None
    wf = working_float(as_float_input(np.empty(0, arr.dtype)))  # TypeError unless float
    groups = grouping(arr.shape, axis, block_size)
    if groups is not None and groups.block_size is not None:
        arr = _rechunk(arr, {groups.axis: _aligned(arr.chunks[groups.axis], groups.block_size)})
    lo, hi, nan_seen = _ranges(arr, groups, wf)
    if nan_seen and nan == "raise":
        raise _nan_error(arr, groups)
    scale, zero_point = range_params(lo, hi, n_bits, signed, include_zero, groups)
    codes = _map_with_params(
        _quantize_block,
        arr,
        scale,
        zero_point,
        groups,
        storage_dtype(n_bits, signed),
        bits=n_bits,
        narrow_range=narrow_range,
        nan=nan,
        rounding=checked_rounding.mode,
        seed=checked_seed,
    )
    checked_axis = None if groups is None else groups.axis
    return QuantizedDaskArray(
        codes,
        scale,
        zero_point,
        n_bits,
        scheme,
        checked_axis,
        block_size,
        arr.dtype.newbyteorder("="),  # a float dtype: working_float checked it
        checked_rounding.mode,
        checked_seed,
    )


def _aligned(chunks: tuple[int, ...], block_size: int) -> tuple[int, ...]:
    """Chunk sizes whose boundaries are those of ``chunks`` moved up to multiples of a block."""
    length = sum(chunks)
    if length == 0:
        return chunks
    ends = itertools.accumulate(chunks)
    bounds = sorted({min(math.ceil(end / block_size) * block_size, length) for end in ends})
    return tuple(end - start for start, end in zip([0, *bounds[:-1]], bounds, strict=True))


def _range_chunks(arr: da.Array, groups: Grouping | None) -> tuple[tuple[int, ...], ...]:
    """The chunks of the per-chunk ranges: one value per chunk and group in it."""
    chunks = []
    for dim, sizes in enumerate(arr.chunks):
        if groups is None or (dim != groups.axis and groups.block_size is None):
            chunks.append((1,) * len(sizes))
        elif dim == groups.axis and groups.block_size is not None:
            chunks.append(tuple(math.ceil(size / groups.block_size) for size in sizes))
        else:
            chunks.append(sizes)
    return ((3,), *chunks)


def _chunk_range(
    block: np.ndarray, axis: int | None, block_size: int | None, wf: type[np.floating]
) -> np.ndarray:
    """``[lo, hi, nan_seen]`` of a chunk, stacked, each of the shape of its groups."""
    arr = as_float_input(block)
    groups = grouping(arr.shape, axis, block_size)
    lo, hi, nan_seen = group_range(arr, groups)
    if groups is None:
        shape: tuple[int, ...] = (1,) * arr.ndim
    elif groups.block_size is None:
        shape = tuple(n if dim == axis else 1 for dim, n in enumerate(arr.shape))
    else:
        shape = groups.param_shape
    out = np.empty((3, *shape), wf)
    out[0], out[1], out[2] = np.reshape(lo, shape), np.reshape(hi, shape), nan_seen
    return out


def _ranges(arr: da.Array, groups: Grouping | None, wf: type[np.floating]) -> tuple[Any, Any, bool]:
    """``(lo, hi, nan_seen)`` of the whole array, or of each group: one pass, tree-reduced."""
    if arr.size == 0:  # no values: an empty range (lo > hi), nothing to read
        if groups is None:
            return wf(np.inf), wf(-np.inf), False
        return (
            np.full(groups.param_shape, np.inf, wf),
            np.full(groups.param_shape, -np.inf, wf),
            False,
        )
    axis = None if groups is None else groups.axis
    block_size = None if groups is None else groups.block_size
    per_chunk = _map_blocks(
        _chunk_range,
        arr,
        axis,
        block_size,
        wf,
        new_axis=0,
        chunks=_range_chunks(arr, groups),
        dtype=wf,
        meta=np.empty((0,) * (arr.ndim + 1), wf),
    )
    if groups is None:
        others: tuple[int, ...] = tuple(range(arr.ndim))
    elif groups.block_size is None:
        others = tuple(dim for dim in range(arr.ndim) if dim != groups.axis)
    else:
        others = ()  # each block lies in one chunk: nothing to reduce
    lo, hi, nan_seen = _compute(
        _min(per_chunk[0], axis=others), _max(per_chunk[1], axis=others), _any(per_chunk[2])
    )
    if groups is None:
        return wf(lo), wf(hi), bool(nan_seen)
    return np.asarray(lo, wf), np.asarray(hi, wf), bool(nan_seen)


def _first_nan_index(
    block: np.ndarray, shape: tuple[int, ...], block_info: Any = None
) -> np.ndarray:
    """The C-order flat index in the whole array of the chunk's first NaN (int64 max if none)."""
    out = np.full((1,) * block.ndim, np.iinfo(np.int64).max, np.int64)
    where = np.flatnonzero(np.isnan(block))
    if where.size:
        start = [begin for begin, _ in block_info[0]["array-location"]]
        local = np.unravel_index(where[0], block.shape)
        index = tuple(int(a) + int(b) for a, b in zip(start, local, strict=True))
        out[...] = np.ravel_multi_index(index, shape) if shape else 0
    return out


def _nan_error(arr: da.Array, groups: Grouping | None) -> ValueError:
    """linquant's NaN error for the whole array: how many, and the index of the first."""
    chunks = tuple((1,) * len(sizes) for sizes in arr.chunks)
    firsts = _map_blocks(_first_nan_index, arr, arr.shape, chunks=chunks, dtype=np.int64)
    count, first = _compute(da.isnan(arr).sum(), _min(firsts))
    return nan_error(arr.shape, int(count), int(first), hint=True, groups=groups)


def _param_chunks(arr: da.Array, groups: Grouping) -> tuple[tuple[int, ...], ...]:
    """Chunks of per-block parameters, or of per-channel ones broadcast along the other dims."""
    if groups.block_size is not None:
        return _range_chunks(arr, groups)[1:]
    return tuple(sizes if dim == groups.axis else (1,) for dim, sizes in enumerate(arr.chunks))


def _map_with_params(
    func: Callable[..., np.ndarray],
    arr: da.Array,
    scale: Any,
    zero_point: Any,
    groups: Grouping | None,
    dtype: np.dtype,
    **kwargs: Any,
) -> da.Array:
    """``func(block, scale, zero_point, axis, block_size, dtype, ...)`` on every chunk.

    Each chunk gets the parameters of the groups it holds, as a Dask array chunked like it.
    """
    meta = np.empty((0,) * arr.ndim, dtype)
    if groups is None:
        return _map_blocks(
            func, arr, scale, zero_point, None, None, dtype, dtype=dtype, meta=meta, **kwargs
        )
    if groups.block_size is None:
        shape = tuple(n if dim == groups.axis else 1 for dim, n in enumerate(arr.shape))
        scale, zero_point = np.reshape(scale, shape), np.reshape(zero_point, shape)
    chunks = _param_chunks(arr, groups)
    return _map_blocks(
        func,
        arr,
        _from_array(scale, chunks=chunks),
        _from_array(zero_point, chunks=chunks),
        groups.axis,
        groups.block_size,
        dtype,
        dtype=dtype,
        meta=meta,
        **kwargs,
    )


def _group_params(
    scale: Any, zero_point: Any, axis: int | None, block_size: int | None
) -> tuple[Any, Any]:
    """A chunk's per-channel parameters as 1-D arrays (they come broadcast to its ndim)."""
    if axis is not None and block_size is None:
        return np.reshape(scale, -1), np.reshape(zero_point, -1)
    return scale, zero_point


def _quantize_block(
    block: np.ndarray,
    scale: Any,
    zero_point: Any,
    axis: int | None,
    block_size: int | None,
    dtype: np.dtype,
    *,
    bits: int,
    narrow_range: bool,
    nan: str,
    rounding: str,
    seed: int | None,
    block_info: Any = None,
) -> np.ndarray:
    """A chunk's codes; stochastic rounding takes its position in the array from
    ``block_info``."""
    scale, zero_point = _group_params(scale, zero_point, axis, block_size)
    position = None
    if rounding == "stochastic":
        start = tuple(begin for begin, _ in block_info[0]["array-location"])
        position = start, tuple(block_info[0]["shape"])
    return quantize_linear(
        block,
        scale,
        zero_point,
        axis=axis,
        block_size=block_size,
        dtype=dtype,
        bits=bits,
        narrow_range=narrow_range,
        nan=nan,
        rounding=rounding,
        seed=seed,
        position=position,
    )


def _dequantize_block(
    block: np.ndarray,
    scale: Any,
    zero_point: Any,
    axis: int | None,
    block_size: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    scale, zero_point = _group_params(scale, zero_point, axis, block_size)
    return dequantize_linear(
        block, scale, zero_point, axis=axis, block_size=block_size, dtype=dtype
    )
