"""Quantization parameters: integer ranges (SPEC §1) and parameters from a range (SPEC §4).

Everything here is scalar arithmetic in the working float, shared by both backends, so that
scales and zero points are identical whichever backend found the range.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
STORAGE_DTYPES: dict[tuple[bool, int], np.dtype] = {
    (False, 8): np.dtype(np.uint8),
    (True, 8): np.dtype(np.int8),
    (False, 16): np.dtype(np.uint16),
    (True, 16): np.dtype(np.int16),
}


def storage_dtype(bits: int, signed: bool) -> np.dtype:
    """The integer dtype that stores ``bits``-bit codes: 8-bit up to 8 bits, else 16-bit."""
    return STORAGE_DTYPES[(signed, 8 if bits <= 8 else 16)]


def integer_range(bits: int, signed: bool, narrow_range: bool = False) -> tuple[int, int]:
    """``(qmin, qmax)`` of SPEC §1."""
    if not signed:
        return 0, 2**bits - 1
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if narrow_range else -qmax - 1), qmax


def _check_finite_range(lo: np.floating, hi: np.floating) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(
            f"x contains infinite values (range [{lo}, {hi}]): dynamic parameters need a "
            "finite range; pass a scale and zero point to quantize_linear to saturate them"
        )


def _scale_from_span(span: np.floating, steps: int, wf: type[np.floating]) -> np.floating:
    """``span / steps`` in the working float; 1.0 for an empty span (SPEC §4 degenerate rule)."""
    if not math.isfinite(span):
        raise ValueError(
            f"the range of x overflows {np.dtype(wf).name}; its span cannot be represented"
        )
    if span == 0:
        one: np.floating = wf(1.0)
        return one
    scale: np.floating = span / wf(steps)
    if scale == 0:
        raise ValueError(
            f"the range of x ({span!r}) is too small for a {np.dtype(wf).name} scale: "
            "it underflows to 0"
        )
    return scale


def asymmetric_params(
    lo: np.floating, hi: np.floating, bits: int, include_zero: bool
) -> tuple[np.floating, np.int32]:
    """Scale and zero point of unsigned ``bits``-bit codes for the range ``[lo, hi]`` (SPEC §4).

    ``lo > hi`` stands for an empty range (no values) and takes the degenerate rule.
    """
    wf = type(lo)
    qmin, qmax = integer_range(bits, signed=False)
    if lo > hi:
        lo = hi = wf(0.0)
    _check_finite_range(lo, hi)
    if include_zero:
        lo, hi = min(lo, wf(0.0)), max(hi, wf(0.0))
    with np.errstate(all="ignore"):
        scale = _scale_from_span(hi - lo, qmax - qmin, wf)
        initial = float(wf(qmin) - lo / scale)
    if include_zero:  # saturating to integer bounds is the same in float64 as in float32
        initial = min(max(initial, qmin), qmax)
    # Python's round() rounds half to even, exactly, as np.rint in the working float would
    if not (math.isfinite(initial) and INT32_MIN <= round(initial) <= INT32_MAX):
        raise ValueError(
            f"the zero point {initial} for the range [{lo}, {hi}] does not fit in int32; "
            "use include_zero=True"
        )
    return scale, np.int32(round(initial))


def symmetric_scale(lo: np.floating, hi: np.floating, bits: int) -> np.floating:
    """Scale of signed ``bits``-bit codes: ``max|x| / (2**(bits-1) - 1)`` (SPEC §4)."""
    wf = type(lo)
    if lo > hi:
        lo = hi = wf(0.0)
    _check_finite_range(lo, hi)
    with np.errstate(all="ignore"):
        amax: np.floating = max(-lo, hi)
        return _scale_from_span(amax, 2 ** (bits - 1) - 1, wf)


# Per-slice parameters (per-axis and per-block quantization): the arithmetic of
# asymmetric_params and symmetric_scale above, element for element over arrays of ranges.
# tests/test_groups.py checks that each element equals the scalar functions' result.


def _first_bad(bad: np.ndarray, describe: Callable[[tuple[int, ...]], str]) -> str:
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
    return describe(index)


def _check_finite_ranges(
    lo: np.ndarray, hi: np.ndarray, describe: Callable[[tuple[int, ...]], str]
) -> None:
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad.any():
        raise ValueError(
            f"x contains infinite values in {_first_bad(bad, describe)}: dynamic parameters "
            "need a finite range; pass scales and zero points to quantize_linear to saturate them"
        )


def _scales_from_spans(
    span: np.ndarray, steps: int, describe: Callable[[tuple[int, ...]], str]
) -> np.ndarray:
    wf = span.dtype.type
    if not np.isfinite(span).all():
        raise ValueError(
            f"the range of {_first_bad(~np.isfinite(span), describe)} overflows "
            f"{np.dtype(wf).name}; its span cannot be represented"
        )
    scale: np.ndarray = np.where(span == 0, wf(1.0), span / wf(steps)).astype(wf)
    if (scale == 0).any():
        raise ValueError(
            f"the range of {_first_bad(scale == 0, describe)} is too small for a "
            f"{np.dtype(wf).name} scale: it underflows to 0"
        )
    return scale


def _without_empty(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empty ranges (``lo > hi``: no values) as [0, 0], the degenerate rule."""
    empty = lo > hi
    zero = lo.dtype.type(0.0)
    return np.where(empty, zero, lo), np.where(empty, zero, hi)


def asymmetric_params_per_slice(
    lo: np.ndarray,
    hi: np.ndarray,
    bits: int,
    include_zero: bool,
    describe: Callable[[tuple[int, ...]], str],
) -> tuple[np.ndarray, np.ndarray]:
    """Scales and int32 zero points for arrays of ranges; errors name the slice."""
    wf = lo.dtype.type
    qmin, qmax = integer_range(bits, signed=False)
    lo, hi = _without_empty(lo, hi)
    _check_finite_ranges(lo, hi, describe)
    if include_zero:
        lo, hi = np.minimum(lo, wf(0.0)), np.maximum(hi, wf(0.0))
    with np.errstate(all="ignore"):
        scale = _scales_from_spans(hi - lo, qmax - qmin, describe)
        initial = (wf(qmin) - lo / scale).astype(np.float64)
    if include_zero:
        initial = np.clip(initial, qmin, qmax)
    zero_point = np.rint(initial)
    bad = ~(np.isfinite(zero_point) & (zero_point >= INT32_MIN) & (zero_point <= INT32_MAX))
    if bad.any():
        raise ValueError(
            f"the zero point of {_first_bad(bad, describe)} does not fit in int32; "
            "use include_zero=True"
        )
    return scale, zero_point.astype(np.int32)


def symmetric_scale_per_slice(
    lo: np.ndarray, hi: np.ndarray, bits: int, describe: Callable[[tuple[int, ...]], str]
) -> np.ndarray:
    """Scales ``max|x| / (2**(bits-1) - 1)`` for arrays of ranges; errors name the slice."""
    lo, hi = _without_empty(lo, hi)
    _check_finite_ranges(lo, hi, describe)
    with np.errstate(all="ignore"):
        amax: np.ndarray = np.maximum(-lo, hi)
        return _scales_from_spans(amax, 2 ** (bits - 1) - 1, describe)
