"""Quantization parameters: integer ranges (SPEC §1) and parameters from a range (SPEC §4).

SPEC §4 is written once, over arrays of ranges in the working float; per tensor it runs on 0-d
ranges. Shared by both backends, so that scales and zero points are identical whichever
backend found the range (the compiled kernels' own SPEC §4, for dynamic per-block calls, is
tested against it: tests/test_params_kernels.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._formats import code_format

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def storage_dtype(bits: int, signed: bool) -> np.dtype:
    """The integer dtype of unpacked ``bits``-bit codes: 8-bit up to 8 bits, else 16-bit."""
    return code_format(bits, signed, packed=False).container


# SPEC §2 in both backends: a rounded value beyond ±2**32 saturates whatever the int32 zero
# point, and 2**32 is exact in float32 and float64, so clipping to it first keeps the
# conversion to int64 exact (the NumPy backend and the compiled kernels' wide form read it).
ROUNDED_LIMIT = 2.0**32


def integer_range(bits: int, signed: bool, narrow_range: bool = False) -> tuple[int, int]:
    """``(qmin, qmax)`` of SPEC §1; signed 1-bit codes are -1 and +1 (the sign of x)."""
    if not signed:
        return 0, 2**bits - 1
    if bits == 1:
        return -1, 1
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if narrow_range else -qmax - 1), qmax


# SPEC §4 over arrays of ranges (one per channel or block), element by element. A per-tensor
# range is the same arithmetic on 0-d values (NumPy scalars, kept cheap: operators where they
# do, and one check of all outcomes); only its messages differ, giving the range where
# per-slice ones name the slice (``describe`` None).

Describe = Callable[[tuple[int, ...]], str]


def _any(mask: Any) -> bool:
    """Whether ``mask`` has a True; a 0-d one without the method call, which costs ~1 us."""
    return bool(mask) if mask.ndim == 0 else bool(mask.any())


def _all(mask: Any) -> bool:
    """Whether ``mask`` is all True, as cheaply as :func:`_any`."""
    return bool(mask) if mask.ndim == 0 else bool(mask.all())


def _without_empty(lo: Any, hi: Any) -> tuple[Any, Any]:
    """Empty ranges (``lo > hi``: no values) as [0, 0], the degenerate rule."""
    empty = lo > hi
    if not _any(empty):
        return lo, hi
    zero = lo.dtype.type(0.0)
    return np.where(empty, zero, lo)[()], np.where(empty, zero, hi)[()]


def _scales(span: Any, steps: int) -> Any:
    """``span / steps`` in the working float; 1.0 for an empty span (the degenerate rule):
    ``0 / steps + 1`` exactly, and ``+ 0`` leaves every other quotient (>= +0.0) as it is."""
    return span / steps + (span == 0)


def _valid(scale: Any) -> Any:
    """Where ``scale`` is a positive finite number: not where the span overflowed (or a bound
    is infinite), nor where the quotient underflowed to 0."""
    return (scale > 0) & (scale < np.inf)


def _int32(zero_point: Any) -> Any:
    """Where the rounded ``zero_point`` is an int32 (not NaN); the bounds -2**31 and 2**31
    are exact in float32, so the test is exact in the working float."""
    return (zero_point >= -(2.0**31)) & (zero_point < 2.0**31)


def _first(bad: Any) -> tuple[int, ...]:
    """The index of the first True of ``bad`` (``()`` when 0-d)."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), np.shape(bad)))


def _error(
    lo: Any, hi: Any, span: Any, scale: Any, initial: Any, describe: Describe | None
) -> ValueError:
    """The error of the first range that fails SPEC §4, checks in this order: a bound is
    infinite, the span overflows, the scale underflows, the zero point leaves int32."""
    wf = np.dtype(lo.dtype).name
    infinite = ~(np.isfinite(lo) & np.isfinite(hi))
    if _any(infinite):
        i = _first(infinite)
        if describe is None:
            return ValueError(
                f"x contains infinite values (range [{lo[i]}, {hi[i]}]): dynamic parameters "
                "need a finite range; pass a scale and zero point to quantize_linear to "
                "saturate them"
            )
        return ValueError(
            f"x contains infinite values in {describe(i)}: dynamic parameters need a finite "
            "range; pass scales and zero points to quantize_linear to saturate them"
        )
    overflows = ~np.isfinite(span)
    if _any(overflows):
        where = "x" if describe is None else describe(_first(overflows))
        return ValueError(f"the range of {where} overflows {wf}; its span cannot be represented")
    if _any(scale == 0):
        i = _first(scale == 0)
        where = f"x ({span[i]!r})" if describe is None else describe(i)
        return ValueError(f"the range of {where} is too small for a {wf} scale: it underflows to 0")
    i = _first(~_int32(np.rint(initial)))
    where = (
        f"{float(initial[i])} for the range [{lo[i]}, {hi[i]}]"
        if describe is None
        else f"of {describe(i)}"
    )
    return ValueError(f"the zero point {where} does not fit in int32; use include_zero=True")


def asymmetric_params_per_slice(
    lo: Any, hi: Any, bits: int, include_zero: bool, describe: Describe | None
) -> tuple[Any, Any]:
    """Scales and int32 zero points of unsigned ``bits``-bit codes for ranges (SPEC §4).

    ``lo`` and ``hi`` are arrays of working-float bounds (``lo > hi``: an empty range, the
    degenerate rule); errors name the first bad slice by ``describe``. With ``describe``
    None they are the 0-d range of a whole tensor, the results NumPy scalars.
    """
    wf = lo.dtype.type
    qmin, qmax = integer_range(bits, signed=False)
    lo, hi = _without_empty(lo, hi)
    low, high = lo, hi
    with np.errstate(all="ignore"):
        if include_zero:
            zero = wf(0.0)  # typed: ufuncs take a Python number slowly
            low, high = np.minimum(lo, zero), np.maximum(hi, zero)
        span = high - low
        scale = _scales(span, qmax - qmin)
        initial = qmin - low / scale
    if include_zero:  # integer bounds, exact in the working float
        initial = np.minimum(np.maximum(initial, wf(qmin)), wf(qmax))
    zero_point = np.rint(initial)  # exact, half to even, however large
    if not _all(_valid(scale) & _int32(zero_point)):
        raise _error(lo, hi, span, scale, initial, describe)
    return scale, zero_point.astype(np.int32)


def symmetric_scale_per_slice(lo: Any, hi: Any, bits: int, describe: Describe | None) -> Any:
    """Scales ``max|x| / (2**(bits-1) - 1)`` of signed codes for ranges (SPEC §4); ``max|x|``
    for 1-bit codes, whose values are -1 and +1.

    Arrays or, with ``describe`` None, the 0-d range of a whole tensor, as for
    :func:`asymmetric_params_per_slice`.
    """
    lo, hi = _without_empty(lo, hi)
    with np.errstate(all="ignore"):
        amax = np.maximum(-lo, hi)
        scale = _scales(amax, max(2 ** (bits - 1) - 1, 1))
    if not _all(_valid(scale)):
        raise _error(lo, hi, amax, scale, None, describe)
    return scale


def asymmetric_params(
    lo: np.floating, hi: np.floating, bits: int, include_zero: bool
) -> tuple[np.floating, np.int32]:
    """Per tensor: :func:`asymmetric_params_per_slice` of the range ``[lo, hi]``."""
    scale, zero_point = asymmetric_params_per_slice(lo, hi, bits, include_zero, None)
    return scale, zero_point


def symmetric_scale(lo: np.floating, hi: np.floating, bits: int) -> np.floating:
    """Per tensor: :func:`symmetric_scale_per_slice` of the range ``[lo, hi]``."""
    scale: np.floating = symmetric_scale_per_slice(lo, hi, bits, None)
    return scale


def params_per_slice(
    lo: Any, hi: Any, bits: int, signed: bool, include_zero: bool, describe: Describe
) -> tuple[np.ndarray, np.ndarray]:
    """Scales and int32 zero points for arrays of ranges, either scheme (zero points of
    signed codes are 0); errors name the slice."""
    if signed:
        scale = symmetric_scale_per_slice(lo, hi, bits, describe)
        return scale, np.zeros(scale.shape, np.int32)
    return asymmetric_params_per_slice(lo, hi, bits, include_zero, describe)
