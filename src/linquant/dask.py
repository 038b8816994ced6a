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

With ``pack=True``, codes of 1 to 4 bits are packed into bytes along the last axis (SPEC §8),
as :func:`linquant.quantize` packs them: a chunk's packed codes must be whole bytes, so ``x``
is first rechunked along its last axis to boundaries that are multiples of the codes a byte
holds (2 for 3- and 4-bit codes, 4 for 2-bit, 8 for 1-bit; with blocks along the last axis,
multiples of both that and ``block_size``), each boundary moved up as for blocks. ``data``
then has chunks of ``ceil(size / per byte)`` bytes along the last axis, and ``length`` is
the last axis' length in codes.

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
    from dask.delayed import delayed
except ImportError as error:  # pragma: no cover - dask is in the test extra
    raise ImportError("linquant.dask needs dask: pip install 'linquant[dask]'") from error

from . import _checks, _rounding
from ._api import (
    dequantize_linear,
    dynamic_settings,
    group_range,
    nan_error,
    quantize_linear,
    range_params,
)
from ._calibrate import Observer, observer_for
from ._formats import CodeFormat, StoredCodes, code_format
from ._groups import Grouping, grouping
from ._layout import as_float_input, working_float
from ._packing import dequantize_packed, pack, unpack
from ._params import storage_dtype
from ._quantized import FLOAT32, PACKED_BITS, QuantizedArray

# Dask's functions carry no annotations: the few used here, typed.
_asarray: Callable[..., da.Array] = da.asarray
_from_array: Callable[..., da.Array] = da.from_array
_map_blocks: Callable[..., da.Array] = da.map_blocks
_rechunk: Callable[..., da.Array] = da.rechunk
_min: Callable[..., da.Array] = da.min
_max: Callable[..., da.Array] = da.max
_any: Callable[..., da.Array] = da.any
_compute: Callable[..., tuple[Any, ...]] = dask.base.compute
_delayed: Callable[..., Any] = delayed
_to_delayed: Callable[..., Any] = da.Array.to_delayed


@dataclass(frozen=True, eq=False, repr=False)
class QuantizedDaskArray(StoredCodes):
    """Lazy codes (a Dask array) and the NumPy parameters that decode them.

    The fields of :class:`linquant.QuantizedArray`; ``data`` is a Dask array, of packed codes
    (SPEC §8) where ``length`` (the last axis' length in codes) is not None: then every chunk
    of ``data`` but the last along its last axis holds the bytes of a whole number of codes.
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
    length: int | None = None

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """The chunks of the codes unpacked (of ``data`` unless packed)."""
        chunks: tuple[tuple[int, ...], ...] = self.data.chunks
        if self.length is None:
            return chunks
        return (*chunks[:-1], _unpacked_sizes(chunks[-1], self.format.per_item, self.length))

    def codes(self) -> da.Array:
        """The codes, unpacked (lazy, chunked as :attr:`chunks`): ``data`` unless packed."""
        if self.length is None:
            return self.data
        dtype = storage_dtype(self.bits, self.format.signed)
        return _map_blocks(
            _unpack_block,
            self.data,
            self.format.width,
            dtype,
            chunks=self.chunks,
            dtype=dtype,
            meta=np.empty((0,) * self.data.ndim, dtype),
        )

    def dequantize(self, dtype: str | np.dtype | type = "float32") -> da.Array:
        """The dequantized array (SPEC §3), lazy, chunked as :attr:`chunks` (those of ``data``
        unless packed), float32 unless ``dtype="float64"``."""
        out_dtype = _checks.output_float(dtype)
        groups = self._grouping()
        if self.length is None:
            return _map_with_params(
                _dequantize_block, self.data, self.scale, self.zero_point, groups, out_dtype
            )
        return _map_with_params(
            _dequantize_packed_block,
            self.data,
            self.scale,
            self.zero_point,
            groups,
            out_dtype,
            logical_chunks=self.chunks,
            out_chunks=self.chunks,
            fmt=self.format,
        )

    def compute(self, **kwargs: Any) -> QuantizedArray:
        """The codes computed (``kwargs`` go to Dask), as a :class:`linquant.QuantizedArray`."""
        (data,) = _compute(self.data, **kwargs)
        return QuantizedArray.with_codes(data, self)

    def _grouping(self) -> Grouping | None:
        return grouping(self.shape, self.axis, self.block_size)

    def __repr__(self) -> str:
        groups = "" if self.axis is None else f", axis={self.axis}"
        if self.block_size is not None:
            groups += f", block_size={self.block_size}"
        if self.rounding != _rounding.DEFAULT:
            groups += f", rounding={self.rounding!r}"
        if self.seed is not None:
            groups += f", seed={self.seed}"
        stored = f"format={self.format.name!r}" if self.packed else f"dtype={self.data.dtype}"
        return (
            f"QuantizedDaskArray(shape={self.shape}, {stored}, "
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
    pack: bool = False,
    calibration: str | Observer | None = None,
) -> QuantizedDaskArray:
    """Quantize a Dask array (or what ``dask.array.asarray`` takes) as :func:`linquant.quantize`.

    The arguments and the results are those of :func:`linquant.quantize` on the whole array,
    bit for bit (stochastic rounding included: each chunk is quantized with its position in
    the array); the parameters are computed now (one read of ``x``), the codes lazily.
    NaN raises ValueError (how many, where the first is, in which channel or block) unless
    ``nan="zero"``. ``pack=True`` packs codes of 1 to 4 bits into bytes along the last axis
    (SPEC §8), rechunking that axis so that every chunk's codes are whole bytes (see the
    module's documentation); codes of more bits and 0-d arrays are not packed, as in
    :func:`linquant.quantize`. ``calibration=`` clips to a calibrated range (per
    tensor, channel or block), as ``lq.quantize(x, calibration=...)`` does: a method name,
    or a new :class:`linquant.Observer` of the call's settings for other options; each
    chunk's observer is computed on the workers (given the chunk's position) and merged in
    a tree (SPEC §10), a second read of ``x``.

    >>> import dask.array as da, numpy as np, linquant as lq, linquant.dask
    >>> x = np.linspace(-1.0, 2.0, 10)
    >>> qa = linquant.dask.quantize(da.from_array(x, chunks=3), rounding="stochastic", seed=7)
    >>> bool((qa.data.compute() == lq.quantize(x, rounding="stochastic", seed=7).data).all())
    True
    >>> packed = linquant.dask.quantize(da.from_array(x, chunks=3), bits=4, pack=True)
    >>> packed.chunks, packed.data.chunks  # bounds 3, 6, 9 moved up to even ones; bytes
    (((4, 2, 4),), ((2, 1, 2),))
    >>> bool((packed.data.compute() == lq.quantize(x, bits=4, pack=True).data).all())
    True
    """
    arr = _asarray(x)
    n_bits, signed, nan, _, _ = dynamic_settings(bits, scheme, nan, include_zero, narrow_range)
    checked_rounding = _rounding.rounding(rounding, seed, None, arr.shape)
    checked_seed = checked_rounding.seed if checked_rounding.stochastic else None
    if not isinstance(pack, (bool, np.bool_)):
        raise ValueError(f"pack must be True or False, got {pack!r}")
    wf = working_float(as_float_input(np.empty(0, arr.dtype)))  # TypeError unless float
    groups = grouping(arr.shape, axis, block_size)
    template = None
    if calibration is not None:
        if nan != "raise":
            raise ValueError("calibration= needs nan='raise' (a calibration raises on NaN)")
        settings = (arr.shape, axis, block_size, n_bits, scheme, include_zero)
        template = observer_for(calibration, *settings)
    packs = bool(pack) and n_bits in PACKED_BITS and arr.ndim > 0
    fmt = code_format(n_bits, signed, packs)
    units = {}  # the multiples chunk boundaries move up to, by axis
    if groups is not None and groups.block_size is not None:
        units[groups.axis] = groups.block_size
    if packs:
        last = arr.ndim - 1
        units[last] = math.lcm(units.get(last, 1), fmt.per_item)
    if units:
        arr = _rechunk(arr, {dim: _aligned(arr.chunks[dim], unit) for dim, unit in units.items()})
    lo, hi, nan_seen = _ranges(arr, groups, wf)
    if nan_seen and nan == "raise":
        raise _nan_error(arr, groups)
    if template is not None and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and arr.size:
        lo, hi = _observed(arr, template).range()  # (an infinite range: range_params raises)
    scale, zero_point = range_params(lo, hi, n_bits, signed, include_zero, groups)
    codes = _map_with_params(
        _quantize_block,
        arr,
        scale,
        zero_point,
        groups,
        storage_dtype(n_bits, signed),
        out_dtype=fmt.container,
        out_chunks=(*arr.chunks[:-1], _packed_sizes(arr.chunks[-1], fmt)) if packs else None,
        bits=n_bits,
        narrow_range=narrow_range,
        nan=nan,
        rounding=checked_rounding.mode,
        seed=checked_seed,
        packed=packs,
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
        arr.shape[-1] if packs else None,
    )


def _packed_sizes(sizes: tuple[int, ...], fmt: CodeFormat) -> tuple[int, ...]:
    """The bytes of chunks of ``sizes`` packed codes (all but the last whole bytes)."""
    return tuple(-(-size // fmt.per_item) for size in sizes)


def _unpacked_sizes(sizes: tuple[int, ...], per_item: int, length: int) -> tuple[int, ...]:
    """The codes of chunks of ``sizes`` bytes of packed codes, ``length`` in all."""
    if not sizes:
        return sizes
    whole = tuple(size * per_item for size in sizes[:-1])
    return (*whole, length - sum(whole))


def _aligned(chunks: tuple[int, ...], block_size: int) -> tuple[int, ...]:
    """Chunk sizes whose boundaries are those of ``chunks`` moved up to multiples of a block."""
    length = sum(chunks)
    if length == 0:
        return chunks
    ends = itertools.accumulate(chunks)
    bounds = sorted({min(math.ceil(end / block_size) * block_size, length) for end in ends})
    return tuple(end - start for start, end in zip([0, *bounds[:-1]], bounds, strict=True))


def _range_chunks(
    array_chunks: tuple[tuple[int, ...], ...], groups: Grouping | None
) -> tuple[tuple[int, ...], ...]:
    """The chunks of the per-chunk ranges: one value per chunk and group in it."""
    chunks = []
    for dim, sizes in enumerate(array_chunks):
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


def _observe(
    block: np.ndarray, template: Observer, position: tuple[tuple[int, ...], ...]
) -> Observer:
    return template.fresh().update(block, position)


def _start(starts: list[list[int]], index: tuple[int, ...]) -> tuple[int, ...]:
    """Where the chunk at block ``index`` starts, from each axis' chunk starts."""
    return tuple(starts[axis][i] for axis, i in enumerate(index))


def _merge(first: Observer, second: Observer) -> Observer:
    return first.merge(second)


def _observed(arr: da.Array, template: Observer) -> Observer:
    """``template``'s settings over every chunk of ``arr``: an observer a chunk, merged in
    pairs, a tree, on the workers."""
    blocks = _to_delayed(arr)
    starts = [np.cumsum((0, *sizes[:-1])).tolist() for sizes in arr.chunks]
    level = [
        _delayed(_observe)(blocks[index], template, (_start(starts, index), arr.shape))
        for index in np.ndindex(blocks.shape)
    ]
    while len(level) > 1:
        pairs = [_delayed(_merge)(a, b) for a, b in zip(level[::2], level[1::2], strict=False)]
        level = pairs + level[len(pairs) * 2 :]
    observer: Observer = _compute(level[0])[0]
    return observer


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
        chunks=_range_chunks(arr.chunks, groups),
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


def _param_chunks(
    array_chunks: tuple[tuple[int, ...], ...], groups: Grouping
) -> tuple[tuple[int, ...], ...]:
    """Chunks of per-block parameters, or of per-channel ones broadcast along the other dims."""
    if groups.block_size is not None:
        return _range_chunks(array_chunks, groups)[1:]
    return tuple(sizes if dim == groups.axis else (1,) for dim, sizes in enumerate(array_chunks))


def _map_with_params(
    func: Callable[..., np.ndarray],
    arr: da.Array,
    scale: Any,
    zero_point: Any,
    groups: Grouping | None,
    dtype: np.dtype,
    *,
    logical_chunks: tuple[tuple[int, ...], ...] | None = None,
    out_chunks: tuple[tuple[int, ...], ...] | None = None,
    out_dtype: np.dtype | None = None,
    **kwargs: Any,
) -> da.Array:
    """``func(block, scale, zero_point, axis, block_size, dtype, ...)`` on every chunk.

    Each chunk gets the parameters of the groups it holds, as a Dask array chunked like it
    (like ``logical_chunks``, the chunks of the values, where ``arr`` holds packed codes);
    the result has ``out_chunks`` (by default those of ``arr``) and ``out_dtype`` (``dtype``).
    Dask pairs the chunks by their index, not their extent.
    """
    out_dtype = dtype if out_dtype is None else out_dtype
    meta = np.empty((0,) * arr.ndim, out_dtype)
    if out_chunks is not None:
        kwargs["chunks"] = out_chunks
    if groups is None:
        return _map_blocks(
            func, arr, scale, zero_point, None, None, dtype, dtype=out_dtype, meta=meta, **kwargs
        )
    shape = tuple(sum(sizes) for sizes in logical_chunks) if logical_chunks else arr.shape
    if groups.block_size is None:
        shape = tuple(n if dim == groups.axis else 1 for dim, n in enumerate(shape))
        scale, zero_point = np.reshape(scale, shape), np.reshape(zero_point, shape)
    chunks = _param_chunks(arr.chunks if logical_chunks is None else logical_chunks, groups)
    return _map_blocks(
        func,
        arr,
        _from_array(scale, chunks=chunks),
        _from_array(zero_point, chunks=chunks),
        groups.axis,
        groups.block_size,
        dtype,
        dtype=out_dtype,
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
    packed: bool,
    block_info: Any = None,
) -> np.ndarray:
    """A chunk's codes, packed if ``packed``; stochastic rounding takes its position in the
    array from ``block_info``."""
    scale, zero_point = _group_params(scale, zero_point, axis, block_size)
    position = None
    if rounding == "stochastic":
        start = tuple(begin for begin, _ in block_info[0]["array-location"])
        position = start, tuple(block_info[0]["shape"])
    codes = quantize_linear(
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
    return pack(codes, bits) if packed else codes


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


def _dequantize_packed_block(
    block: np.ndarray,
    scale: Any,
    zero_point: Any,
    axis: int | None,
    block_size: int | None,
    dtype: np.dtype,
    *,
    fmt: CodeFormat,
    block_info: Any = None,
) -> np.ndarray:
    """A chunk of packed codes dequantized; its shape in values is that of its output."""
    scale, zero_point = _group_params(scale, zero_point, axis, block_size)
    shape = tuple(block_info[None]["chunk-shape"])
    return dequantize_packed(block, shape, fmt, scale, zero_point, axis, block_size, dtype)


def _unpack_block(
    block: np.ndarray, width: int, dtype: np.dtype, block_info: Any = None
) -> np.ndarray:
    """A chunk of packed codes unpacked; its length along the last axis is its output's."""
    return unpack(block, width, block_info[None]["chunk-shape"][-1], dtype)
