"""Quantization parameters: integer ranges (SPEC §1) and parameters from a range (SPEC §4).

Everything here is scalar arithmetic in the working float, shared by both backends, so that
scales and zero points are identical whichever backend found the range.
"""

from __future__ import annotations

import math

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
