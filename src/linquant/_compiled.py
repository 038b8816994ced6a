"""The compiled backend: the Cython kernels of ``linquant._kernels`` over N-d arrays.

Same functions, arguments and results as ``linquant._numpy_backend``. Arrays of any layout
reach the 2-D kernels as strided views (:func:`linquant._layout.slabs`), never as copies.
Importing this module raises ImportError when the extension was not built.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._layout import slabs


def minmax(x: np.ndarray) -> tuple[np.floating, np.floating, int, int]:
    """Return ``(lo, hi, nan_count, first_nan)``; see ``linquant._numpy_backend.minmax``."""
    wf = x.dtype.type
    lo, hi, nan_count, first_nan = wf(np.inf), wf(-np.inf), 0, -1
    for offset, (view,) in slabs(x):
        slab_lo, slab_hi, slab_nans, slab_first = _kernels.minmax(view)
        lo, hi = min(lo, wf(slab_lo)), max(hi, wf(slab_hi))
        if slab_nans and not nan_count:
            first_nan = offset + slab_first
        nan_count += slab_nans
    return lo, hi, nan_count, first_nan


def quantize(
    x: np.ndarray,
    scale: np.floating,
    zero_point: int,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> bool:
    """Quantize ``x`` into ``out`` (SPEC §2); return True if ``x`` held a NaN (stored as 0.0)."""
    nan_seen = False
    for _, (x_view, out_view) in slabs(x, out):
        nan_seen |= _kernels.quantize(x_view, scale, zero_point, qmin, qmax, out_view)
    return nan_seen


def dequantize(q: np.ndarray, scale: np.floating, zero_point: int, out: np.ndarray) -> None:
    """Dequantize ``q`` into ``out`` (SPEC §3): ``(q - zero_point) * scale``."""
    for _, (q_view, out_view) in slabs(q, out):
        _kernels.dequantize(q_view, scale, zero_point, out_view)
