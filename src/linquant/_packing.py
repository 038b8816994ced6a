"""Packed codes (SPEC §8): :func:`pack` and :func:`unpack`, and quantization straight to packed
codes and back, chunk by chunk.

Quantizing to packed codes runs over chunks of the array (``_chunks``) whose codes are whole
bytes: each chunk's codes go to a buffer of at most ``CHUNK_ELEMENTS`` codes, then packed into
the result, so no temporary is of the input's size; dequantizing unpacks each chunk into that
buffer and dequantizes it into the result. Each chunk takes its own parameters and rounds as
its place in the array says, so the codes are those of the unpacked call, packed.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from . import _backend, _checks, _threads
from ._api import _finite_range, _quantize_into, dequantize_linear, dynamic_settings, range_params
from ._chunks import Chunk, chunks, params_of
from ._formats import CodeFormat, code_format
from ._groups import Grouping, grouping
from ._params import integer_range
from ._rounding import Rounding

# Codes of one chunk: 1 MiB, which stays in the cache between its quantization and its packing.
CHUNK_ELEMENTS = 1 << 20
# From this many chunks the work is shared among the threads (as the kernels share calls of
# about as many elements: waking a pool thread costs about as much as 2M values take).
PARALLEL_CHUNKS = 3


def _rows(a: np.ndarray) -> np.ndarray:
    """``a`` with at least one axis: a 0-d array is one row of one element."""
    return a.reshape(1) if a.ndim == 0 else a


def _packed_format(bits: object, signed: bool) -> CodeFormat:
    n_bits = _checks.bits(bits, largest=4)
    return code_format(n_bits, signed, packed=True)


def pack(codes: object, bits: int) -> np.ndarray:
    """Pack ``bits``-bit codes (1 to 4) into bytes along the last axis (SPEC §8).

    ``codes`` is a uint8 or int8 array (unsigned or signed codes; signed 1-bit codes are -1
    and +1); each row of its last axis becomes ``ceil(n / per byte)`` bytes: two 3- or 4-bit
    codes a byte (first in the low nibble, as ONNX int4), four 2-bit codes from the low bits
    up, eight 1-bit codes from the most significant bit down (as ``np.packbits``). A code
    outside the range of ``bits``-bit codes raises ValueError: nothing is cut.

    >>> import numpy as np, linquant as lq
    >>> lq.pack(np.array([1, 2, 3], np.uint8), bits=4)
    array([33,  3], dtype=uint8)
    >>> lq.pack(np.array([-1, 1, 1, -1, 1], np.int8), bits=1)
    array([104], dtype=uint8)
    """
    arr = np.asarray(codes)
    if arr.dtype not in (np.dtype(np.uint8), np.dtype(np.int8)):
        raise TypeError(f"codes must be a uint8 or int8 array, got dtype {arr.dtype}")
    fmt = _packed_format(bits, arr.dtype.kind == "i")
    rows = _rows(arr)
    qmin, qmax = integer_range(int(bits), fmt.signed)
    if rows.size:
        lo, hi = int(rows.min()), int(rows.max())
        if lo < qmin or hi > qmax or (fmt.width == 1 and fmt.signed and 0 in rows):
            raise ValueError(
                f"codes must be {bits}-bit {'signed' if fmt.signed else 'unsigned'} codes "
                f"({'-1 or +1' if fmt.signed and fmt.width == 1 else f'{qmin} to {qmax}'}), "
                f"got values from {lo} to {hi}"
            )
    out = _backend.empty_output(fmt.stored_shape(arr.shape), fmt.container)
    if out.size:
        _backend.active().pack(rows, fmt.width, out)
    return out


def unpack(packed: object, bits: int, n: int, dtype: object = "uint8") -> np.ndarray:
    """The codes of ``packed`` (bytes from :func:`pack`), ``n`` along the last axis.

    ``dtype`` uint8 gives unsigned codes, int8 signed ones (sign-extended; 1-bit: -1 and +1).
    ``packed.shape[-1]`` must be ``ceil(n / per byte)``; the bits past the ``n``-th code of
    each row are ignored.

    >>> import numpy as np, linquant as lq
    >>> lq.unpack(np.array([33, 3], np.uint8), bits=4, n=3)
    array([1, 2, 3], dtype=uint8)
    """
    arr = np.asarray(packed)
    if arr.dtype != np.uint8:
        raise TypeError(f"packed must be a uint8 array, got dtype {arr.dtype}")
    code_dtype = _checks.code_dtype(dtype)
    if code_dtype.itemsize != 1:
        raise ValueError(f"dtype must be uint8 or int8, got {dtype!r}")
    fmt = _packed_format(bits, code_dtype.kind == "i")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if arr.ndim == 0 or arr.shape[-1] != -(-int(n) // fmt.per_item):
        raise ValueError(
            f"packed must have {-(-int(n) // fmt.per_item)} bytes along its last axis for "
            f"{n} {bits}-bit codes, got shape {arr.shape}"
        )
    out = _backend.empty_output((*arr.shape[:-1], int(n)), code_dtype)
    if out.size:
        _backend.active().unpack(arr, fmt.width, out)
    return out


def packed_slices(chunk: Chunk, fmt: CodeFormat) -> tuple[slice, ...]:
    """The bytes of ``chunk``'s packed codes (its range along the last axis starts on a byte:
    ``chunks(..., align=fmt.per_item)``)."""
    *outer, last = chunk.slices
    first = last.start or 0
    stop = None if last.stop is None else -(-last.stop // fmt.per_item)
    return (*outer, slice(first // fmt.per_item, stop))


Piece = tuple[Chunk, Grouping | None]  # a chunk, and the grouping of its parameters


def _pieces(shape: tuple[int, ...], groups: Grouping | None, fmt: CodeFormat) -> list[Piece]:
    return [
        (chunk, None if groups is None else grouping(chunk.shape, groups.axis, groups.block_size))
        for chunk in chunks(shape, groups, CHUNK_ELEMENTS, align=fmt.per_item)
    ]


def _shares(pieces: list[Piece]) -> list[tuple[list[Piece]]]:
    """The pieces in runs, one per thread where there are ``PARALLEL_CHUNKS`` or more: each
    thread quantizes or dequantizes its own chunks into its own buffer."""
    parts = _threads.get_num_threads() if len(pieces) >= PARALLEL_CHUNKS else 1
    edges = [len(pieces) * k // parts for k in range(parts + 1)]
    return [(pieces[a:b],) for a, b in pairwise(edges) if a < b]


def _buffer(pieces: list[Piece], dtype: np.dtype) -> np.ndarray:
    """A buffer for the codes of the largest chunk."""
    return np.empty(max((chunk.size for chunk, _ in pieces), default=0), dtype)


def quantize_packed(
    x: np.ndarray,
    scale: Any,
    zero_point: Any,
    bits: int,
    signed: bool,
    qmin: int,
    qmax: int,
    groups: Grouping | None,
    rounding: Rounding,
) -> np.ndarray:
    """The packed codes of ``x`` (``ndim >= 1``, no NaN left to raise: NaN quantizes as 0.0),
    as ``_api._quantize_into`` would give them unpacked."""
    fmt = code_format(bits, signed, packed=True)
    out = _backend.empty_output(fmt.stored_shape(x.shape), fmt.container)

    def run(pieces: list[Piece]) -> None:
        buffer = _buffer(pieces, np.dtype(np.int8 if signed else np.uint8))
        for chunk, chunk_groups in pieces:
            codes = buffer[: chunk.size].reshape(chunk.shape)
            _quantize_into(
                x[chunk.slices],
                *params_of(chunk, groups, scale, zero_point),
                qmin,
                qmax,
                "zero",
                codes,
                chunk_groups,
                rounding.moved(chunk.origin, x.shape),
                sign=signed and bits == 1,
            )
            _backend.active().pack(codes, fmt.width, out[packed_slices(chunk, fmt)])

    _threads.run(run, _shares(_pieces(x.shape, groups, fmt)))
    return out


def dequantize_packed(
    packed: np.ndarray,
    shape: tuple[int, ...],
    fmt: CodeFormat,
    scale: Any,
    zero_point: Any,
    axis: int | None,
    block_size: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    """The dequantized array of ``shape`` (``ndim >= 1``) from its packed codes."""
    out = _backend.empty_output(shape, dtype)
    groups = grouping(shape, axis, block_size)

    def run(pieces: list[Piece]) -> None:
        buffer = _buffer(pieces, np.dtype(np.int8 if fmt.signed else np.uint8))
        for chunk, chunk_groups in pieces:
            codes = buffer[: chunk.size].reshape(chunk.shape)
            _backend.active().unpack(packed[packed_slices(chunk, fmt)], fmt.width, codes)
            dequantize_linear(
                codes,
                *params_of(chunk, groups, scale, zero_point),
                axis=None if chunk_groups is None else chunk_groups.axis,
                block_size=None if chunk_groups is None else chunk_groups.block_size,
                dtype=dtype,
                out=out[chunk.slices],
            )

    _threads.run(run, _shares(_pieces(shape, groups, fmt)))
    return out


def dynamic_quantize_packed(
    x: np.ndarray,
    bits: int,
    scheme: str,
    include_zero: bool,
    narrow_range: bool,
    nan: str,
    axis: int | None,
    block_size: int | None,
    rounding: Rounding,
    clip: tuple[Any, Any] | None = None,
) -> tuple[np.ndarray, Any, Any]:
    """``_api.dynamic_quantize`` with its codes packed: the range, then the packed codes."""
    n_bits, signed, nan, qmin, qmax = dynamic_settings(
        bits, scheme, nan, include_zero, narrow_range
    )
    groups = grouping(x.shape, axis, block_size)
    lo, hi = _finite_range(x, nan, groups) if clip is None else clip
    scale, zero_point = range_params(lo, hi, n_bits, signed, include_zero, groups)
    zp = zero_point if isinstance(zero_point, np.ndarray) else int(zero_point)
    data = quantize_packed(x, scale, zp, n_bits, signed, qmin, qmax, groups, rounding)
    return data, scale, zero_point
