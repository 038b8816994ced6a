"""Compiled kernels: one min/max pass, one fused quantize pass, one dequantize pass.

Each kernel works on a 2-D strided view; ``linquant._compiled`` collapses an N-d array of any
layout into such views without copying it. Every kernel releases the GIL. The arithmetic is
SPEC §2-§4 to the bit, the same as ``linquant._numpy_backend``:

- quantize: ``t = rint(x / scale)`` in the working float (true division, round half to even),
  then the integer zero point is added and the result saturates to ``[qmin, qmax]``;
- dequantize: ``(q - zero_point)`` in integers, converted to the output float, times ``scale``.
"""

from cython cimport floating
from libc.math cimport INFINITY, rint, rintf
from libc.stdint cimport int8_t, int16_t, int64_t, uint8_t, uint16_t

ctypedef fused codes:
    uint8_t
    int8_t
    uint16_t
    int16_t


cdef inline floating _round_half_even(floating v) noexcept nogil:
    # rint rounds half to even in the default floating-point environment, as np.rint does.
    if floating is float:
        return rintf(v)
    else:
        return rint(v)


cdef inline int64_t _quantize_one(
    floating v, floating scale, int64_t zero_point, int64_t qmin, int64_t qmax
) noexcept nogil:
    # 2**32 is exact in both floats; any rounded value beyond it saturates whatever the int32
    # zero point, so clamping to it first keeps the int64 conversion defined and exact.
    cdef floating limit = 4294967296.0
    cdef floating t = _round_half_even(v / scale)
    cdef int64_t q
    if t != t:
        t = 0  # NaN quantizes as 0.0 would (nan="zero"); the caller handles nan="raise"
    elif t > limit:
        t = limit
    elif t < -limit:
        t = -limit
    q = <int64_t>t + zero_point
    if q < qmin:
        q = qmin
    elif q > qmax:
        q = qmax
    return q


def minmax(const floating[:, :] x):
    """Return ``(lo, hi, nan_count, first_nan)`` of a 2-D view in one pass.

    NaN is left out of the range; ``first_nan`` is the row-major index of the first NaN, or -1.
    With no value other than NaN, ``(lo, hi)`` is ``(inf, -inf)``.
    """
    cdef floating lo = INFINITY, hi = -INFINITY, v
    cdef Py_ssize_t i, j, rows = x.shape[0], cols = x.shape[1]
    cdef Py_ssize_t nan_count = 0, first_nan = -1
    with nogil:
        for i in range(rows):
            for j in range(cols):
                v = x[i, j]
                if v != v:
                    if nan_count == 0:
                        first_nan = i * cols + j
                    nan_count += 1
                else:
                    if v < lo:
                        lo = v
                    if v > hi:
                        hi = v
    return lo, hi, nan_count, first_nan


def quantize(
    const floating[:, :] x,  # IN
    double scale_value,  # a working-float value, so the narrowing below is exact
    int64_t zero_point,
    int64_t qmin,
    int64_t qmax,
    codes[:, :] out,  # OUT, same shape as x
):
    """Quantize ``x`` into ``out`` (SPEC §2); return True if ``x`` held a NaN (stored as 0.0)."""
    cdef Py_ssize_t i, j, rows = x.shape[0], cols = x.shape[1]
    cdef floating v, scale = <floating>scale_value
    cdef bint nan_seen = False
    with nogil:
        for i in range(rows):
            for j in range(cols):
                v = x[i, j]
                nan_seen |= v != v
                out[i, j] = <codes>_quantize_one(v, scale, zero_point, qmin, qmax)
    return nan_seen


def dequantize(
    const codes[:, :] q,  # IN
    double scale_value,  # a value of the output float, so the narrowing below is exact
    int64_t zero_point,
    floating[:, :] out,  # OUT, same shape as q
):
    """Dequantize ``q`` into ``out`` (SPEC §3): ``(q - zero_point) * scale``."""
    cdef Py_ssize_t i, j, rows = q.shape[0], cols = q.shape[1]
    cdef floating scale = <floating>scale_value
    with nogil:
        for i in range(rows):
            for j in range(cols):
                out[i, j] = <floating>(<int64_t>q[i, j] - zero_point) * scale
