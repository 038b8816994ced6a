"""The NumPy backend: the reference implementation of the kernels, NumPy only.

Same functions, arguments and results as ``linquant._compiled`` (the compiled backend);
the test suite pairs them by name and checks that they agree bit for bit. Inputs are already
normalized by the API layer: native float32/float64 ``x``, a working-float ``scale``, integer
``zero_point``, ``qmin`` and ``qmax``, and an ``out`` of the right shape and dtype.
This backend may allocate temporaries of the input's size; the compiled one does not.
"""

from __future__ import annotations

import numpy as np

from ._groups import Grouping
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
