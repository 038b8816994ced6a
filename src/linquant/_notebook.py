"""The functions of the notebook linquant grew out of, with its three bugs fixed.

1. its ``clamp`` clamped the caller's input instead of the codes: codes here always saturate
   and the input is never modified;
2. its symmetric scale was ``alpha/2**(bits-1)-1``: here it is ``alpha / (2**(bits-1) - 1)``;
3. a constant input divided by zero: here a zero range takes scale 1.0 (SPEC §4).

Codes are uint8/int8 (uint16/int16 above 8 bits) rather than the notebook's int64.
"""

from __future__ import annotations

import numpy as np

from ._api import dequantize_linear, dynamic_quantize


def asymmetric_quantization(x: object, bits: int = 8) -> tuple[np.ndarray, np.floating, np.int32]:
    """``(q, scale, zero_point)``: unsigned codes over the range of ``x`` and 0 (SPEC §4).

    >>> import numpy as np, linquant as lq
    >>> lq.asymmetric_quantization(np.array([-34.5, 0.0, 135.8]))[0]
    array([  0,  52, 255], dtype=uint8)
    """
    return dynamic_quantize(x, bits, "asymmetric")


def symmetric_quantization(x: object, bits: int = 8) -> tuple[np.ndarray, np.floating]:
    """``(q, scale)``: signed codes, ``scale = max|x| / (2**(bits-1) - 1)`` (SPEC §4).

    >>> import numpy as np, linquant as lq
    >>> lq.symmetric_quantization(np.array([-34.5, 0.0, 135.8]))[0]
    array([-32,   0, 127], dtype=int8)
    """
    codes, scale, _ = dynamic_quantize(x, bits, "symmetric")
    return codes, scale


def _float_of(scale: object) -> np.dtype:
    """The float a notebook-style dequantization computes in: float32 only for a float32 scale."""
    return np.dtype(np.float32 if np.asarray(scale).dtype == np.float32 else np.float64)


def asymmetric_dequantization(q: object, scale: object, zero_point: object) -> np.ndarray:
    """``(q - zero_point) * scale`` (SPEC §3), in the float of ``scale``."""
    return dequantize_linear(q, scale, zero_point, dtype=_float_of(scale))


def symmetric_dequantization(q: object, scale: object) -> np.ndarray:
    """``q * scale`` (SPEC §3), in the float of ``scale``."""
    return dequantize_linear(q, scale, 0, dtype=_float_of(scale))
