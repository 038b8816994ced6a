"""The operators: argument checks, parameters, then the active backend's kernels.

Flow of a call: ``x`` is normalized (``_layout``), arguments are checked (``_checks``),
the range comes from one ``minmax`` pass and the parameters from ``_params`` (dynamic calls
only), then one ``quantize`` or ``dequantize`` pass of the active backend (``_backend``)
writes the result.

Per-axis and per-block parameters (``axis=``, ``block_size=``; ``_groups``) take the
backends' ``group_*`` kernels, with the parameters of each channel or block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _backend, _checks, _rounding
from ._groups import Grouping, grouping
from ._layout import as_float_input, working_float
from ._params import (
    asymmetric_params,
    integer_range,
    params_per_slice,
    storage_dtype,
    symmetric_scale,
)
from ._rounding import Rounding


def nan_error(
    shape: tuple[int, ...], count: int, first: int, hint: bool, groups: Grouping | None = None
) -> ValueError:
    index = tuple(int(i) for i in np.unravel_index(first, shape)) if shape else ()
    message = f"x contains {count} NaN value{'s' if count > 1 else ''}, the first at index {index}"
    if groups is not None:
        message += f" (in {groups.describe(groups.group_of(index))})"
    if hint:
        message += "; pass nan='zero' to quantize NaN as 0.0"
    return ValueError(message)


def range_of(x: np.ndarray) -> tuple[np.floating, np.floating, int, int]:
    """The backend's ``(lo, hi, nan_count, first_nan)``, with -0.0 bounds made +0.0.

    Of equal zeros, a vectorized min/max may keep either; adding +0.0 makes the result the
    same whatever the backend, instruction set or thread count.
    """
    lo, hi, nan_count, first_nan = _backend.active().minmax(x)
    zero = x.dtype.type(0.0)
    return lo + zero, hi + zero, nan_count, first_nan


def group_range(x: np.ndarray, groups: Grouping | None) -> tuple[Any, Any, bool]:
    """``(lo, hi, nan_seen)``: the range of ``x`` without NaN (``lo > hi`` if empty).

    Scalars, or with ``groups`` arrays of the range of each channel or block; -0.0 bounds
    are made +0.0, as :func:`range_of` does.
    """
    if groups is None:
        lo, hi, nan_count, _ = range_of(x)
        return lo, hi, bool(nan_count)
    lo, hi, nan_seen = _backend.active().group_minmax(x, groups)
    zero = x.dtype.type(0.0)
    return lo + zero, hi + zero, bool(nan_seen)


def _finite_range(
    x: np.ndarray, nan: str, groups: Grouping | None = None, hint: bool = True
) -> tuple[Any, Any]:
    """``(lo, hi)`` of ``x`` without NaN (``lo > hi`` if empty); NaN raises unless nan="zero".

    Scalars, or with ``groups`` arrays of the range of each channel or block.
    """
    lo, hi, nan_seen = group_range(x, groups)
    if nan_seen and nan == "raise":
        _, _, nan_count, first_nan = range_of(x)
        raise nan_error(x.shape, nan_count, first_nan, hint, groups)
    return lo, hi


def _quantize_into(
    x: np.ndarray,
    scale: np.floating | np.ndarray,
    zero_point: int | np.ndarray,
    qmin: int,
    qmax: int,
    nan: str,
    out: np.ndarray,
    groups: Grouping | None,
    rounding: Rounding,
    sign: bool = False,
) -> np.ndarray:
    """The codes of ``x`` in ``out``; ``sign``: signed 1-bit codes, -1 and +1, the sign of
    ``x`` whatever the parameters (SPEC §1), with ``x > 0`` false for NaN."""
    if sign:
        return _sign_into(x, nan, out, groups)
    backend = _backend.active()
    if groups is None:
        nan_seen = backend.quantize(x, scale, zero_point, qmin, qmax, out, rounding)
    else:
        nan_seen = backend.group_quantize(x, scale, zero_point, qmin, qmax, out, groups, rounding)
    if nan_seen and nan == "raise":
        _, _, nan_count, first_nan = range_of(x)
        raise nan_error(x.shape, nan_count, first_nan, hint=True, groups=groups)
    return out


def _sign_into(x: np.ndarray, nan: str, out: np.ndarray, groups: Grouping | None) -> np.ndarray:
    if nan == "raise":
        _, _, nan_count, first_nan = range_of(x)
        if nan_count:
            raise nan_error(x.shape, nan_count, first_nan, hint=True, groups=groups)
    np.greater(x, 0, out=out)  # 0 or 1 in place, then -1 or +1
    np.multiply(out, 2, out=out)
    np.subtract(out, 1, out=out)
    return out


def minmax(x: object, axis: int | None = None, block_size: int | None = None) -> tuple[Any, Any]:
    """Minimum and maximum of ``x`` in one pass, as working-float scalars (SPEC §1).

    With ``axis``, arrays of the minimum and maximum of each channel along it; with
    ``block_size`` too, of each block of that many elements along it (the shape of per-block
    parameters). Raises ValueError if ``x`` (or a channel or block) is empty or holds NaN
    (saying how many, and where the first is).

    >>> import linquant as lq
    >>> lq.minmax([3.0, -1.5, 2.0])
    (np.float64(-1.5), np.float64(3.0))
    >>> lq.minmax([[3.0, -1.5], [2.0, 0.5]], axis=1)
    (array([ 2. , -1.5]), array([3. , 0.5]))
    """
    arr = as_float_input(x)
    groups = grouping(arr.shape, axis, block_size)
    lo, hi = _finite_range(arr, "raise", groups, hint=False)
    if np.any(lo > hi):
        raise ValueError("minmax of an empty array (or channel, or block) is undefined")
    return lo, hi


def quantize_linear(
    x: object,
    scale: object,
    zero_point: object = 0,
    *,
    axis: int | None = None,
    block_size: int | None = None,
    dtype: object = "uint8",
    bits: int | None = None,
    narrow_range: bool = False,
    nan: str = "raise",
    rounding: str = "half_even",
    seed: int | None = None,
    position: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Quantize with given parameters, as ONNX QuantizeLinear (SPEC §2).

    ``q = saturate(rint(x / scale) + zero_point)``: true division in the working float, round
    half to even (or by ``rounding``), then the integer zero point, then saturation to the
    range of ``dtype`` (uint8, int8, uint16 or int16), narrowed to ``bits`` if given and, for
    signed codes, to ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` with ``narrow_range=True``;
    signed 1-bit codes are -1 and +1, the sign of ``x`` (SPEC §1). ±inf saturate.
    NaN raises ValueError unless ``nan="zero"``, which quantizes it as 0.0. With ``out=``
    the codes are written there (when NaN raises, ``out`` may already be partly written).

    Per-axis (ONNX opset 13): with ``axis``, ``scale`` is 1-D of length ``x.shape[axis]`` and
    element ``i`` along the axis uses ``scale[i]`` and ``zero_point[i]`` (or the one integer
    ``zero_point``). Per-block (opset 21): with ``block_size`` too, ``scale`` has ``x.shape``
    with ``x.shape[axis]`` replaced by ``ceil(x.shape[axis] / block_size)``.

    ``rounding`` (SPEC §2.1) rounds ``x / scale`` otherwise: ``"half_away"``, ``"half_up"``
    (ties toward +inf), ``"floor"``, ``"ceil"``, ``"trunc"``, or ``"stochastic"`` (up with
    probability the fraction), which needs ``seed`` (an int from 0 to 2**64 - 1) and draws
    each element's number from its flat index: the same codes on any backend, CPU and thread
    count. For a piece of a larger array, ``position=(start, shape)`` says where it lies (the
    box of an array of ``shape`` starting at ``start``), and the piece rounds as it would in
    the whole array.

    >>> import numpy as np, linquant as lq
    >>> lq.quantize_linear(np.array([-1.0, 0.25, 0.5, 100.0], np.float32), 0.5, 10)
    array([  8,  10,  11, 210], dtype=uint8)
    >>> lq.quantize_linear(np.array([-1.25, 1.25, 2.5]), 1.0, rounding="half_away", dtype="int8")
    array([-1,  1,  3], dtype=int8)
    >>> lq.quantize_linear(np.full(8, 0.25), 1.0, rounding="stochastic", seed=7)
    array([0, 1, 0, 0, 0, 1, 0, 0], dtype=uint8)
    """
    arr = as_float_input(x)
    return quantize_given(
        arr,
        scale,
        zero_point,
        _rounding.rounding(rounding, seed, position, arr.shape),
        axis=axis,
        block_size=block_size,
        dtype=dtype,
        bits=bits,
        narrow_range=narrow_range,
        nan=nan,
        out=out,
    )


def quantize_given(
    x: np.ndarray,
    scale: object,
    zero_point: object,
    rounding: Rounding,
    *,
    axis: int | None = None,
    block_size: int | None = None,
    dtype: object = "uint8",
    bits: int | None = None,
    narrow_range: bool = False,
    nan: str = "raise",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`quantize_linear` of a float array (``as_float_input``) with a checked
    ``rounding``: for a piece whose stochastic indices ``position=`` cannot say (a
    Fortran-ordered file read as its C-ordered transpose)."""
    wf = working_float(x)
    code_dtype = _checks.code_dtype(dtype)
    signed = code_dtype.kind == "i"
    width = 8 * code_dtype.itemsize
    n_bits = width if bits is None else _checks.bits(bits, largest=width)
    if narrow_range and not signed:
        raise ValueError("narrow_range=True needs a signed dtype (int8 or int16)")
    qmin, qmax = integer_range(n_bits, signed, narrow_range)
    groups = grouping(x.shape, axis, block_size)
    checked_scale, checked_zero_point = _checked_params(scale, zero_point, wf, groups)
    nan = _checks.nan_policy(nan)
    out = _output(out, x.shape, code_dtype, x, checked_scale, checked_zero_point)
    sign = signed and n_bits == 1
    return _quantize_into(
        x, checked_scale, checked_zero_point, qmin, qmax, nan, out, groups, rounding, sign
    )


def _output(
    out: np.ndarray | None,
    shape: tuple[int, ...],
    dtype: np.dtype,
    source: np.ndarray,
    scale: object,
    zero_point: object,
) -> np.ndarray:
    """A new result array, or ``out=`` checked, apart from every array the kernels read."""
    if out is None:
        return _backend.empty_output(shape, dtype)
    inputs = {"the input array": source, "scale": scale, "zero_point": zero_point}
    _checks.out_array(out, shape, dtype, inputs)
    return out


def _checked_params(
    scale: object, zero_point: object, wf: type[np.floating], groups: Grouping | None
) -> tuple[Any, Any]:
    """Scale and zero point: scalars per tensor, arrays of the groups' shape otherwise."""
    if groups is None:
        return _checks.scale(scale, wf), _checks.zero_point(zero_point)
    shape = groups.param_shape
    return _checks.scales(scale, shape, wf), _checks.zero_points(zero_point, shape)


def dequantize_linear(
    q: object,
    scale: object,
    zero_point: object = 0,
    *,
    axis: int | None = None,
    block_size: int | None = None,
    dtype: object = "float32",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Dequantize, as ONNX DequantizeLinear (SPEC §3): ``(q - zero_point) * scale``.

    ``q - zero_point`` is exact (integers), converted to ``dtype`` (float32 or float64), then
    multiplied by ``scale`` rounded to that float. ``axis`` and ``block_size`` give per-axis
    or per-block parameters, as for :func:`quantize_linear`.

    >>> import numpy as np, linquant as lq
    >>> lq.dequantize_linear(np.array([8, 10, 11, 210], np.uint8), 0.5, 10)
    array([ -1. ,   0. ,   0.5, 100. ], dtype=float32)
    """
    codes = _checks.codes_input(q)
    out_dtype = _checks.output_float(dtype)
    groups = grouping(codes.shape, axis, block_size)
    checked_scale, checked_zero_point = _checked_params(scale, zero_point, out_dtype.type, groups)
    out = _output(out, codes.shape, out_dtype, codes, checked_scale, checked_zero_point)
    if groups is None:
        _backend.active().dequantize(codes, checked_scale, checked_zero_point, out)
    else:
        _backend.active().group_dequantize(codes, checked_scale, checked_zero_point, out, groups)
    return out


def dynamic_settings(
    bits: object, scheme: object, nan: object, include_zero: bool, narrow_range: bool
) -> tuple[int, bool, str, int, int]:
    """Checked ``(bits, signed, nan, qmin, qmax)`` of a dynamic quantization (SPEC §1, §5)."""
    n_bits = _checks.bits(bits)
    signed = _checks.scheme(scheme) == "symmetric"
    nan = _checks.nan_policy(nan)
    if signed and not include_zero:
        raise ValueError("include_zero=False applies to scheme='asymmetric' only")
    if narrow_range and not signed:
        raise ValueError("narrow_range=True applies to scheme='symmetric' only")
    qmin, qmax = integer_range(n_bits, signed, narrow_range)
    return n_bits, signed, nan, qmin, qmax


def range_params(
    lo: Any, hi: Any, bits: int, signed: bool, include_zero: bool, groups: Grouping | None
) -> tuple[Any, Any]:
    """Scale and zero point of SPEC §4 for the range ``[lo, hi]`` (``lo > hi``: empty).

    Scalars per tensor; with ``groups``, ``lo`` and ``hi`` are arrays of the range of each
    channel or block and so are the results (errors name the channel or block).
    """
    if groups is not None:
        return params_per_slice(lo, hi, bits, signed, include_zero, groups.describe)
    if signed:
        return symmetric_scale(lo, hi, bits), np.int32(0)
    return asymmetric_params(lo, hi, bits, include_zero)


def dynamic_quantize(
    x: object,
    bits: int,
    scheme: str,
    include_zero: bool = True,
    narrow_range: bool = False,
    nan: str = "raise",
    axis: int | None = None,
    block_size: int | None = None,
    rounding: Rounding = _rounding.HALF_EVEN,
    clip: tuple[Any, Any] | None = None,
) -> tuple[np.ndarray, Any, Any]:
    """Codes, scale and zero point with parameters chosen from the data (SPEC §4).

    Per tensor, or with ``axis`` (and ``block_size``) per channel (block), each by SPEC §4
    applied to its own range; then the scale and zero point are arrays. The codes round by
    ``rounding`` (checked, SPEC §2.1). ``clip``: a range to use instead of the data's, the
    groups' arrays or per tensor scalars (a calibration's, SPEC §10; the codes saturate).
    """
    arr = as_float_input(x)
    n_bits, signed, nan, qmin, qmax = dynamic_settings(
        bits, scheme, nan, include_zero, narrow_range
    )
    groups = grouping(arr.shape, axis, block_size)
    out = _backend.empty_output(arr.shape, storage_dtype(n_bits, signed))
    sign = signed and n_bits == 1
    if groups is not None and not sign and clip is None:  # groups that are runs of x
        params = _backend.active().block_dynamic_quantize(
            arr, groups, n_bits, signed, include_zero, nan == "raise", qmin, qmax, out, rounding
        )
        if params is not None:
            return out, params[0], params[1]
    lo, hi = _finite_range(arr, nan, groups) if clip is None else clip
    scale, zero_point = range_params(lo, hi, n_bits, signed, include_zero, groups)
    zp = zero_point if isinstance(zero_point, np.ndarray) else int(zero_point)
    codes = _quantize_into(arr, scale, zp, qmin, qmax, nan, out, groups, rounding, sign)
    return codes, scale, zero_point


def dynamic_quantize_linear(x: object) -> tuple[np.ndarray, np.floating, np.int32]:
    """ONNX DynamicQuantizeLinear: uint8 codes of a range stretched to include 0 (SPEC §4).

    >>> import numpy as np, linquant as lq
    >>> q, scale, zero_point = lq.dynamic_quantize_linear(np.array([-1, 1, 2.5], np.float32))
    >>> q, scale, zero_point
    (array([  0, 146, 255], dtype=uint8), np.float32(0.01372549), np.int32(73))
    """
    return dynamic_quantize(x, bits=8, scheme="asymmetric")
