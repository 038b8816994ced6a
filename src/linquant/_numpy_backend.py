"""The NumPy backend: the reference implementation of the kernels, NumPy only.

Same functions, arguments and results as ``linquant._compiled`` (the compiled backend);
the test suite pairs them by name and checks that they agree bit for bit. Inputs are already
normalized by the API layer: native float32/float64 ``x``, a working-float ``scale``, integer
``zero_point``, ``qmin`` and ``qmax``, and an ``out`` of the right shape and dtype.
This backend may allocate temporaries of the input's size; the compiled one does not.
"""

from __future__ import annotations

import numpy as np

from ._formats import BlockType, block_type, check_block_shapes
from ._groups import Grouping
from ._histograms import NO_WIDTH, width_exponents
from ._params import ROUNDED_LIMIT, params_per_slice
from ._rounding import Rounding, splitmix64


def minmax(x: np.ndarray) -> tuple[np.floating, np.floating, int, int]:
    """Return ``(lo, hi, nan_count, first_nan)``; NaN is left out of the range.

    ``first_nan`` is the C-order flat index of the first NaN, or -1. With no value other than
    NaN (or none at all), ``(lo, hi)`` is ``(inf, -inf)``.
    """
    wf = x.dtype.type
    is_nan = np.isnan(x)
    nan_count = int(np.count_nonzero(is_nan))
    first_nan = int(np.argmax(is_nan.reshape(-1))) if nan_count else -1
    if nan_count == x.size:
        return wf(np.inf), wf(-np.inf), nan_count, first_nan
    values = x[~is_nan] if nan_count else x
    return values.min(), values.max(), nan_count, first_nan


HISTOGRAM_PIECE = 1 << 20  # values binned at once: the temporaries stay this size


def histogram(
    x: np.ndarray, log2_bins: int
) -> tuple[np.floating, np.floating, int, int, np.ndarray]:
    """Return ``(lo, hi, status, exponent, counts)``: the range of ``x``, and the histogram of
    ``|x|`` with ``2**log2_bins`` bins of width ``2**exponent`` (SPEC §10, ``_histograms``);
    ``status`` 1 if ``x`` holds a NaN, 2 if an infinity (the rest then undefined), else 0.
    """
    wf, bins = x.dtype.type, 1 << log2_bins
    counts = np.zeros(2 * bins, np.int64)
    if x.size == 0:
        return wf(np.inf), wf(-np.inf), 0, NO_WIDTH, counts
    lo, hi = x.min(), x.max()  # NaN, if any, in both
    if np.isnan(lo) or np.isinf(lo) or np.isinf(hi):
        return lo, hi, 1 if np.isnan(lo) else 2, NO_WIDTH, counts
    amax = max(-float(lo), float(hi))
    if amax == 0:
        counts[0] = x.size
        return lo, hi, 0, NO_WIDTH, counts
    exponent = int(width_exponents(np.array(amax), log2_bins))
    flat = x.reshape(-1)  # a copy only for a layout that has no flat view
    for start in range(0, flat.size, HISTOGRAM_PIECE):
        piece = flat[start : start + HISTOGRAM_PIECE].astype(np.float64)
        # |x| * 2**-exponent < bins, exact (a result below 1 may be rounded, staying below 1)
        index = np.ldexp(np.abs(piece), -exponent).astype(np.intp)
        index += bins * (piece < 0)
        counts += np.bincount(index, minlength=2 * bins)
    return lo, hi, 0, exponent, counts


def quantize(
    x: np.ndarray,
    scale: np.floating | np.ndarray,
    zero_point: int | np.ndarray,
    qmin: int,
    qmax: int,
    out: np.ndarray,
    rounding: Rounding,
) -> bool:
    """Quantize ``x`` into ``out`` (SPEC §2); return True if ``x`` held a NaN (stored as 0.0).

    ``scale`` and ``zero_point`` may be arrays that broadcast to ``x`` (per-axis, per-block).
    """
    rounded = np.empty(x.shape, x.dtype)  # an array even when x is 0-d
    with np.errstate(over="ignore", invalid="ignore"):
        np.divide(x, scale, out=rounded)
        _round(rounded, rounding)
    is_nan = np.isnan(rounded)
    nan_seen = bool(is_nan.any())
    if nan_seen:
        rounded[is_nan] = 0.0
    np.clip(rounded, -ROUNDED_LIMIT, ROUNDED_LIMIT, out=rounded)
    codes = rounded.astype(np.int64)
    codes += zero_point
    np.clip(codes, qmin, qmax, out=codes)
    out[...] = codes
    return nan_seen


def _round(t: np.ndarray, rounding: Rounding) -> None:
    """Round ``t`` to integers in place by ``rounding``'s mode (SPEC §2.1), in exact
    arithmetic: NaN and ±inf stay as they are."""
    mode = rounding.mode
    if mode == "half_even":
        np.rint(t, out=t)
    elif mode in ("half_away", "half_up"):
        # A tie is exactly half an integer from its neighbours; t ± 1/2 is then an integer,
        # exact in the float (|t| < 2**23, or 2**52, for a tie).
        nearest = np.rint(t)
        tie = np.abs(t - nearest) == 0.5
        half = np.copysign(0.5, t) if mode == "half_away" else 0.5
        np.copyto(t, np.where(tie, t + half, nearest))
    elif mode == "floor":
        np.floor(t, out=t)
    elif mode == "ceil":
        np.ceil(t, out=t)
    elif mode == "trunc":
        np.trunc(t, out=t)
    else:
        floor = np.floor(t)
        fraction = t.astype(np.float64) - floor.astype(np.float64)
        draw = splitmix64(rounding.seed, rounding.indices(t.shape)) >> np.uint64(11)
        up = draw.astype(np.float64) < fraction * 2.0**53  # exact: draw < 2**53
        np.add(floor, up, out=t)


def dequantize(
    q: np.ndarray,
    scale: np.floating | np.ndarray,
    zero_point: int | np.ndarray,
    out: np.ndarray,
) -> None:
    """Dequantize ``q`` into ``out`` (SPEC §3): ``(q - zero_point) * scale``, or with arrays
    ``scale`` and ``zero_point`` that broadcast to ``q``."""
    shifted = q.astype(np.int64)
    shifted -= zero_point
    with np.errstate(over="ignore"):
        np.multiply(shifted.astype(out.dtype), scale, out=out)


def pack(codes: np.ndarray, width: int, out: np.ndarray) -> None:
    """Pack ``codes`` (..., n), each within ``width`` bits (1, 2 or 4), into the bytes
    ``out`` (..., ceil(n / (8 // width))) along the last axis (SPEC §8)."""
    per_byte = 8 // width
    n = codes.shape[-1]
    slots = np.zeros((*codes.shape[:-1], out.shape[-1] * per_byte), np.uint8)
    if width == 1:
        slots[..., :n] = codes == 1  # the codes 1 and +1
        out[...] = np.packbits(slots, axis=-1)
        return
    slots[..., :n] = codes.astype(np.uint8) & np.uint8((1 << width) - 1)  # two's complement
    shifts = np.arange(0, 8, width, dtype=np.uint8)
    grouped = slots.reshape(*out.shape, per_byte) << shifts
    out[...] = np.bitwise_or.reduce(grouped, axis=-1)


def unpack(packed: np.ndarray, width: int, out: np.ndarray) -> None:
    """Unpack the bytes ``packed`` into the codes ``out`` (..., n): unsigned for uint8,
    sign-extended for int8 (1-bit: -1 and +1) (SPEC §8)."""
    n = out.shape[-1]
    signed = out.dtype == np.int8
    if width == 1:
        bits = np.unpackbits(packed, axis=-1, count=n).astype(np.int8)
        out[...] = 2 * bits - 1 if signed else bits
        return
    shifts = np.arange(0, 8, width, dtype=np.uint8)
    slots = (packed[..., None] >> shifts) & np.uint8((1 << width) - 1)
    values = slots.reshape(*packed.shape[:-1], -1)[..., :n].astype(np.int8)
    if signed:
        half = np.int8(1 << (width - 1))
        values = (values ^ half) - half
    out[...] = values


# GGUF blocks (SPEC §9): ggml's reference quantizer in float32, blocks as rows.

# Blocks a piece: the temporaries stay a few MiB whatever the array.
GGUF_PIECE_BLOCKS = 1 << 15


def _first_equal(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Each row's first element equal to ``value`` where that is a zero (ggml's loops keep
    the first of equal values, which only tells for the sign of a zero)."""
    first = x[np.arange(len(x)), np.argmax(x == value[:, None], axis=1)]
    return np.where(value == 0, first, value)


def _gguf_scales(x: np.ndarray, block: BlockType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each block's ``(d, m, defined)``: scale, minimum (0 for the symmetric types) and
    whether ggml's reference defines its codes (finite values, range and reciprocal)."""
    with np.errstate(invalid="ignore", over="ignore"):
        defined = np.isfinite(x).all(axis=1)
        top = np.float32((1 << block.bits) - 1)
        if block.affine:
            lo, hi = _first_equal(x, x.min(axis=1)), _first_equal(x, x.max(axis=1))
            span = hi - lo
            defined &= np.isfinite(span)
            return span / top, lo, defined
        magnitude = np.abs(x)
        amax = magnitude.max(axis=1)
        if block.bits == 8:
            return amax / np.float32(127), np.zeros_like(amax), defined
        largest = x[np.arange(len(x)), np.argmax(magnitude == amax[:, None], axis=1)]
        signed_max = np.where(amax > 0, largest, np.float32(0))  # all zeros: +0.0
        return signed_max / -np.float32(1 << (block.bits - 1)), np.zeros_like(amax), defined


def _gguf_codes(x: np.ndarray, block: BlockType) -> tuple[np.ndarray, ...]:
    """``(codes, d, m, defined)`` of blocks ``x``: codes as uint8 (Q8_0: int8 as uint8)."""
    d, m, defined = _gguf_scales(x, block)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        reciprocal = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
        defined &= np.isfinite(reciprocal)
    # Undefined blocks are not written: zeros in their place keep the casts below defined.
    x, m, reciprocal = (
        np.where(defined.reshape(-1, *[1] * (v.ndim - 1)), v, np.float32(0))
        for v in (x, m, reciprocal)
    )
    t = (x - m[:, None] if block.affine else x) * reciprocal[:, None]
    if block.bits == 8:  # roundf: half away from zero
        whole = np.trunc(t)
        rounded = whole + np.where(np.abs(t - whole) >= 0.5, np.sign(t), np.float32(0))
        return rounded.astype(np.int8).view(np.uint8), d, m, defined
    offset = np.float32(0.5) if block.affine else np.float32((1 << (block.bits - 1)) + 0.5)
    codes = np.minimum((t + offset).astype(np.int32), (1 << block.bits) - 1)
    return codes.astype(np.uint8), d, m, defined


def _half_bytes(values: np.ndarray) -> np.ndarray:
    """float32 values as the 2 little-endian bytes of the nearest float16 (ties to even)."""
    with np.errstate(over="ignore"):
        return values.astype("<f2")[:, None].view(np.uint8)


def _put_codes(codes: np.ndarray, block: BlockType, out: np.ndarray) -> None:
    """The codes' bytes: Q8_0 one a byte; else element j in the low nibble of byte j and
    j + 16 in its high one, and for 5 bits, bit 4 of element j in bit j of the uint32 qh."""
    start = block.codes_offset
    if block.bits == 8:
        out[:, start:] = codes
        return
    half = block.block_size // 2
    out[:, start:] = (codes[:, :half] & 15) | ((codes[:, half:] & 15) << 4)
    if block.bits == 5:
        out[:, start - 4 : start] = np.packbits((codes >> 4) & 1, axis=1, bitorder="little")


def gguf_quantize(x: np.ndarray, ggml_type: int, out: np.ndarray) -> int:
    """Quantize the rows of ``x`` (C-contiguous float32, whole blocks of 32 values) to GGUF
    blocks in ``out``; return the row-major index of the first block that ggml's reference
    leaves undefined (nothing is written from there), else -1 (SPEC §9)."""
    block = block_type(ggml_type)
    check_block_shapes(block, x.shape, out.shape)
    values = x.reshape(-1, block.block_size)
    blocks = out.reshape(-1, block.type_size)
    for start in range(0, len(values), GGUF_PIECE_BLOCKS):
        piece = slice(start, start + GGUF_PIECE_BLOCKS)
        codes, d, m, defined = _gguf_codes(values[piece], block)
        written = len(codes) if defined.all() else int(np.argmin(defined))
        target = blocks[piece][:written]
        target[:, :2] = _half_bytes(d[:written])
        if block.affine:
            target[:, 2:4] = _half_bytes(m[:written])
        _put_codes(codes[:written], block, target)
        if written < len(codes):
            return start + written
    return -1


def gguf_dequantize(blocks: np.ndarray, ggml_type: int, out: np.ndarray) -> None:
    """Dequantize rows of GGUF blocks into ``out`` (float32): code * d (+ m), each operation
    rounded to float32 (SPEC §9)."""
    block = block_type(ggml_type)
    check_block_shapes(block, out.shape, blocks.shape)
    stored = blocks.reshape(-1, block.type_size)
    values = out.reshape(-1, block.block_size)
    for start in range(0, len(stored), GGUF_PIECE_BLOCKS):
        piece = stored[start : start + GGUF_PIECE_BLOCKS]
        d = piece[:, :2].copy().view("<f2").astype(np.float32)
        low = piece[:, block.codes_offset :]
        if block.bits == 8:
            codes = low.view(np.int8).astype(np.float32)
        else:
            nibbles = np.concatenate([low & 15, low >> 4], axis=1)
            if block.bits == 5:
                qh = piece[:, block.codes_offset - 4 : block.codes_offset]
                nibbles |= np.unpackbits(qh, axis=1, bitorder="little") << 4
            offset = 0 if block.affine else 1 << (block.bits - 1)
            codes = (nibbles.astype(np.int16) - offset).astype(np.float32)
        m = piece[:, 2:4].copy().view("<f2") if block.affine else np.zeros(d.shape, "<f2")
        m = m.astype(np.float32)
        with np.errstate(invalid="ignore"):  # signaling NaN scales: their blocks are below
            result = codes * d + m if block.affine else codes * d
        nan = np.isnan(d) | np.isnan(m)  # the whole block: d's NaN (else m's), quieted
        if nan.any():
            quiet = np.where(np.isnan(d), d, m).view(np.uint32) | np.uint32(0x00400000)
            result = np.where(nan, quiet.view(np.float32), result)
        values[start : start + GGUF_PIECE_BLOCKS] = result


# Per-axis and per-block: the same arithmetic with each group's parameters, broadcast to x.


def group_minmax(x: np.ndarray, groups: Grouping) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(lo, hi, nan_seen)``: each group's range without NaN, ``(inf, -inf)`` if it has none."""
    lo = groups.reduce(x, np.fmin, np.inf)
    hi = groups.reduce(x, np.fmax, -np.inf)
    return lo, hi, bool(np.isnan(x).any())


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
    """Quantize with each group's ``scale`` and ``zero_point`` (arrays of the groups' shape)."""
    if x.size == 0:  # expand makes an index per element along the axis, however many claimed
        return False
    scale, zero_point = groups.expand(scale), groups.expand(zero_point)
    return quantize(x, scale, zero_point, qmin, qmax, out, rounding)


def group_dequantize(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, out: np.ndarray, groups: Grouping
) -> None:
    """Dequantize with each group's ``scale`` and ``zero_point``."""
    if q.size:  # see group_quantize
        dequantize(q, groups.expand(scale), groups.expand(zero_point), out)


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
    """Dynamic quantization of groups that are runs of ``x`` (``Grouping.as_runs``): SPEC §4
    for each group's range, then its codes into ``out``; the scales and zero points.

    None where the compiled twin (one read of ``x``) returns None, so that the API takes the
    same path on both backends: other layouts, a group whose parameters raise, a NaN with
    ``nan_raises``. The general path then runs, and raises with its messages.
    """
    if groups.as_runs(x) is None or groups.as_runs(out) is None:
        return None
    lo, hi, nan_seen = group_minmax(x, groups)
    if nan_seen and nan_raises:
        return None
    try:
        scale, zero_point = params_per_slice(lo, hi, bits, signed, include_zero, groups.describe)
    except ValueError:
        return None
    group_quantize(x, scale, zero_point, qmin, qmax, out, groups, rounding)
    return scale, zero_point
