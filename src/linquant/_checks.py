"""Argument checks of the public API (SPEC §5): each error names the argument at fault."""

from __future__ import annotations

import math

import numpy as np

from ._formats import FORMATS
from ._layout import FLOAT_DTYPES, native_aligned
from ._params import INT32_MAX, INT32_MIN

SCHEMES = ("asymmetric", "symmetric")
NAN_POLICIES = ("raise", "zero")
CODE_DTYPES: tuple[np.dtype, ...] = tuple(f.container for f in FORMATS if not f.packed)
OUTPUT_FLOATS: tuple[np.dtype, ...] = (np.dtype(np.float32), np.dtype(np.float64))
REAL_SCALARS = (float, int, np.floating, np.integer)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def scheme(value: object) -> str:
    return _choice("scheme", value, SCHEMES)


def nan_policy(value: object) -> str:
    return _choice("nan", value, NAN_POLICIES)


def bits(value: object, largest: int = 16) -> int:
    """An int in ``1..largest`` (bool is not an int here)."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or not 1 <= value <= largest
    ):
        raise ValueError(f"bits must be an int from 1 to {largest}, got {value!r}")
    return int(value)


def _dtype(name: str, value: object, allowed: tuple[np.dtype, ...]) -> np.dtype:
    try:
        dtype = None if value is None else np.dtype(value)  # type: ignore[call-overload]
    except TypeError:
        dtype = None
    if not isinstance(dtype, np.dtype) or dtype not in allowed:
        names = tuple(d.name for d in allowed)
        raise ValueError(f"{name} must be one of {names}, got {value!r}")
    return dtype


def code_dtype(value: object) -> np.dtype:
    """The storage dtype of ``quantize_linear``: uint8, int8, uint16 or int16."""
    return _dtype("dtype", value, CODE_DTYPES)


def output_float(value: object) -> np.dtype:
    """The output dtype of dequantization: float32 or float64."""
    return _dtype("dtype", value, OUTPUT_FLOATS)


def source_float(value: object) -> np.dtype:
    """The dtype of quantized input: float16, float32 or float64."""
    return _dtype("source_dtype", value, FLOAT_DTYPES)


def _single(value: object, kinds: str) -> np.generic | None:
    """The one item of a 0-d or one-element 1-D array of dtype kind ``kinds``, else None.

    ONNX takes either for a per-tensor scale or zero point (ONNX Runtime checks
    IsScalarOr1ElementVector, and rejects other shapes such as ``(1, 1)``).
    """
    arr = np.asarray(value)
    if arr.shape not in ((), (1,)) or arr.dtype.kind not in kinds:
        return None
    item: np.generic = arr.reshape(1)[0]
    return item


def scale(value: object, wf: type[np.floating]) -> np.floating:
    """A real scalar, or a one-element 1-D array of one, positive and finite in ``wf``."""
    if not isinstance(value, REAL_SCALARS) or isinstance(value, (bool, np.bool_)):
        item = _single(value, "fiu")
        if item is None:
            raise ValueError(
                f"scale must be a real number or a one-element 1-D array, got {value!r}"
            )
        value = item
    real = float(value)
    if abs(real) < 1e38:
        converted: np.floating = wf(real)
    else:  # may overflow float32: inf, and no warning, then the check below
        with np.errstate(over="ignore"):
            converted = wf(real)
    if not (math.isfinite(converted) and converted > 0):
        raise ValueError(f"scale must be positive and finite in {np.dtype(wf).name}, got {value!r}")
    return converted


def zero_point(value: object) -> int:
    """An integer scalar, or a one-element 1-D array of one, that fits in int32."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        integer = int(value)
    else:
        item = _single(value, "iu")
        if item is None:
            raise ValueError(
                f"zero_point must be an integer or a one-element 1-D array, got {value!r}"
            )
        integer = int(item)
    if not INT32_MIN <= integer <= INT32_MAX:
        raise ValueError(f"zero_point must fit in int32, got {integer}")
    return integer


def codes_input(value: object) -> np.ndarray:
    """Quantized codes: an array of uint8, int8, uint16 or int16, native and aligned."""
    arr = np.asarray(value)
    if arr.dtype not in CODE_DTYPES and arr.dtype.newbyteorder("=") not in CODE_DTYPES:
        names = tuple(d.name for d in CODE_DTYPES)
        raise TypeError(f"q must be an array of one of {names}, got dtype {arr.dtype}")
    return native_aligned(arr)


def out_array(
    out: object, shape: tuple[int, ...], dtype: np.dtype, inputs: dict[str, object]
) -> None:
    """``out=`` must be a writeable, aligned array of ``shape`` and ``dtype``, apart from every
    array in ``inputs`` (by name): the kernels read them while they write ``out``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype.name}, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    if not out.flags.aligned or any(s % out.itemsize for s in out.strides):
        raise ValueError("out must be aligned to its item size")
    for name, value in inputs.items():
        if isinstance(value, np.ndarray) and np.may_share_memory(out, value):
            raise ValueError(f"out must not overlap {name}")


def scales(value: object, shape: tuple[int, ...], wf: type[np.floating]) -> np.ndarray:
    """Per-axis or per-block scales: an array of ``shape``, positive and finite in ``wf``.

    Returned C-contiguous and aligned, whatever the layout given: the kernels view it as 3-D
    and read its items in place.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or isinstance(value, (bool, np.bool_)):
        raise ValueError(f"scale must be an array of real numbers, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(
            f"scale must have shape {shape} for this axis and block_size, got {arr.shape}"
        )
    with np.errstate(over="ignore"):
        # C order: see _groups.params_3d; a misaligned array is copied (astype keeps it as it
        # is when it needs no conversion)
        converted = arr.astype(wf, order="C", copy=not arr.flags.aligned)
    if converted.size and not (converted.min() > 0 and converted.max() < np.inf):  # NaN fails
        raise ValueError(f"every scale must be positive and finite in {np.dtype(wf).name}")
    return converted


def zero_points(value: object, shape: tuple[int, ...]) -> np.ndarray:
    """Per-axis or per-block zero points: one integer shared by all, or an array of ``shape``.

    The one integer may be a scalar or a one-element 1-D array, as for a per-tensor zero point.
    Returned as a C-contiguous, aligned array of ``shape``: as given when int32 or narrower (uint8,
    int8, uint16, int16, as ONNX gives them; the backends widen them as they read), else
    converted to int32; a broadcast int32 array for one shared integer.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"zero_point must be an integer or an array of integers, got {value!r}")
    if arr.shape not in ((), (1,), shape):
        raise ValueError(
            f"zero_point must be an integer, a one-element 1-D array or have shape {shape} "
            f"for this axis and block_size, got {arr.shape}"
        )
    fits = arr.dtype.itemsize < 4 or arr.dtype == np.int32  # else look at the values
    if arr.size and not fits and not (arr.min() >= INT32_MIN and arr.max() <= INT32_MAX):
        raise ValueError("every zero_point must fit in int32")
    if arr.shape == shape and fits and arr.dtype.isnative and arr.flags.aligned:
        return np.ascontiguousarray(arr)
    converted = arr.astype(np.int32, order="C", copy=not arr.flags.aligned)
    return converted if converted.shape == shape else np.broadcast_to(converted, shape)
