# The compiled kernels: one source, built once per instruction-set level
# (_kernels_baseline.pyx, _kernels_avx2.pyx, _kernels_avx512.pyx include it; setup.py gives
# each its target flags, and linquant._compiled picks one at import).
#
# Each kernel takes 2-D strided views (linquant._layout.slabs makes them from any array without
# copying) and releases the GIL. Rows whose steps are 1 take a contiguous loop, which the
# compiler vectorizes; the per-element arithmetic is SPEC §2-§4 to the bit, the same as
# linquant._numpy_backend:
#   quantize:   t = x / scale in the working float (true division), rounded by the call's
#               mode (SPEC §2.1: half to even by default); NaN -> 0.0; then the integer zero
#               point; then saturation to [qmin, qmax]
#   dequantize: (q - zero_point) in integers, converted to the output float, times scale
# No flag of the build allows FMA contraction or reassociation (setup.py).

from cython cimport floating
from libc.math cimport INFINITY, isfinite, rint
from libc.string cimport memcpy
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t

from linquant._params import ROUNDED_LIMIT as _ROUNDED_LIMIT

cdef extern from "lq_kernels.h" nogil:  # the C kernels: _c/lq_kernels.h lists them
    int lq_minmax_f32(const float *p, Py_ssize_t n, Py_ssize_t step, float *lo, float *hi)
    int lq_minmax_f64(const double *p, Py_ssize_t n, Py_ssize_t step, double *lo, double *hi)
    int lq_minmax_each_f32(const float *p, Py_ssize_t row_step, Py_ssize_t rows, Py_ssize_t n,
                           float *lo, float *hi)
    int lq_minmax_each_f64(const double *p, Py_ssize_t row_step, Py_ssize_t rows, Py_ssize_t n,
                           double *lo, double *hi)
    float lq_rint_f32(float t)
    double lq_rint_f64(double t)
    int lq_irint_f32(float t)
    int lq_irint_f64(double t)
    int lq_cpu_level()
    ctypedef struct lq_rounding:
        int mode
        uint64_t seed
    void lq_rounding_init(lq_rounding *r, int mode, uint64_t seed)
    float lq_adjusted_f32(float t, const lq_rounding *r)
    double lq_adjusted_f64(double t, const lq_rounding *r)
    float lq_stochastic_f32(float t, uint64_t seed, int64_t i)
    double lq_stochastic_f64(double t, uint64_t seed, int64_t i)
    enum:
        LQ_HALF_EVEN
        LQ_HALF_AWAY
        LQ_HALF_UP
        LQ_FLOOR
        LQ_CEIL
        LQ_TRUNC
        LQ_STOCHASTIC
    enum:
        LQ_FAST_BOUND
        LQ_U8
        LQ_I8
        LQ_U16
        LQ_I16
        LQ_EACH_ROWS
    # Families, by code type (the first argument, from _code): void * is of that type.
    void lq_stream_fence()
    int lq_quantize_lines(int code, const float *x, Py_ssize_t n, float scale, float lo,
                          float hi, int zero_point, void *out, const lq_rounding *rounding,
                          int64_t index, int64_t index_step, int stream, Py_ssize_t *begin,
                          Py_ssize_t *end)
    int lq_stream_dequantize(int code, const void *q, Py_ssize_t n, float scale, int zero_point,
                             float *out, Py_ssize_t *begin, Py_ssize_t *end)
    int lq_quantize_each(int code, const float *x, Py_ssize_t x_row_step, Py_ssize_t rows,
                         Py_ssize_t n, const float *scale, const int32_t *zero_point,
                         Py_ssize_t zero_point_step, int qmin, int qmax, void *out,
                         Py_ssize_t out_row_step, int stream, int rounding_mode)
    int lq_dequantize_each(int code, const void *q, Py_ssize_t n, const float *scale,
                           const int32_t *zero_point, Py_ssize_t zero_point_step, float *out,
                           int stream)
    int lq_quantize_blocks(int code, const float *x, Py_ssize_t n, Py_ssize_t block,
                           const float *scale, Py_ssize_t scale_step, const int32_t *zero_point,
                           Py_ssize_t zero_point_step, int qmin, int qmax, void *out, int stream,
                           int rounding_mode)
    int lq_quantize_blocks_zcode(int code, const float *x, Py_ssize_t n, Py_ssize_t block,
                                 const float *scale, Py_ssize_t scale_step,
                                 const void *zero_point, Py_ssize_t zero_point_step, int qmin,
                                 int qmax, void *out, int stream, int rounding_mode)
    int lq_block_dynamic(int code, const float *x, Py_ssize_t n, Py_ssize_t block, int bits,
                         int is_signed, int include_zero, int qmin, int qmax, float *scale,
                         Py_ssize_t scale_step, int32_t *zero_point, Py_ssize_t zero_point_step,
                         void *out, int stream, int rounding_mode)

ctypedef fused codes:
    uint8_t
    int8_t
    uint16_t
    int16_t

# Per-block zero points: int32 (as the checks convert them), or the code type itself (ONNX's
# y_zero_point), which the kernels for blocks along the innermost axis read in place.
ctypedef fused block_zero_point:
    int32_t
    uint8_t
    int8_t
    uint16_t
    int16_t


cdef inline int _code(const block_zero_point *p) noexcept nogil:
    # The lq_kernels.h name of a code type (-1 for int32), for the families that take one
    # argument for every code type: the one place where Cython's types meet C names.
    if block_zero_point is uint8_t:
        return LQ_U8
    elif block_zero_point is int8_t:
        return LQ_I8
    elif block_zero_point is uint16_t:
        return LQ_U16
    elif block_zero_point is int16_t:
        return LQ_I16
    else:
        return -1


# The quantize and dequantize loops have a fast form in int32 and the working float, valid
# when every bound |qmin - zero_point|, |qmax - zero_point| is at most LQ_FAST_BOUND
# (_c/lq_portable.h says why). Other zero points (up to the int32 limits, SPEC §4
# include_zero=False) take the wide form, in int64. linquant._compiled reads the bound here.
FAST_BOUND = LQ_FAST_BOUND
# Wide form: rounded values are clamped to ±2**32 first, which changes no result and keeps the
# int64 conversion defined and exact (linquant._params.ROUNDED_LIMIT says why).
cdef double WIDE_LIMIT = _ROUNDED_LIMIT


cdef inline floating _rint(floating t) noexcept nogil:
    if floating is float:
        return lq_rint_f32(t)
    else:
        return lq_rint_f64(t)


cdef inline int32_t _irint(floating t) noexcept nogil:
    if floating is float:
        return lq_irint_f32(t)
    else:
        return lq_irint_f64(t)


# Rounding modes (SPEC §2.1), by their names in linquant._rounding.MODES.
ROUNDING_MODES = {
    "half_even": LQ_HALF_EVEN,
    "half_away": LQ_HALF_AWAY,
    "half_up": LQ_HALF_UP,
    "floor": LQ_FLOOR,
    "ceil": LQ_CEIL,
    "trunc": LQ_TRUNC,
    "stochastic": LQ_STOCHASTIC,
}

# The forms of the loops' rounding step, one copy of each loop per form: every loop that
# rounds (a *_as function) takes a `kind`, always a literal where it is called (from the
# function of the same name without _as, which dispatches on _kind), so that the compiler
# builds and vectorizes each form on its own.
cdef enum:
    _NEAREST_EVEN  # the conversion itself rounds half to even
    _ADJUSTED  # the other deterministic modes: lq_adjusted
    _STOCHASTIC  # lq_stochastic, by each element's index


cdef inline int _kind(const lq_rounding *rounding) noexcept nogil:
    if rounding.mode == LQ_HALF_EVEN:
        return _NEAREST_EVEN
    return _STOCHASTIC if rounding.mode == LQ_STOCHASTIC else _ADJUSTED


cdef inline floating _rounded(
    floating t, int kind, const lq_rounding *rounding, int64_t index,
) noexcept nogil:
    # t rounded to an integer-valued float, except by _NEAREST_EVEN, whose caller's conversion
    # rounds (the one instruction of the default mode).
    if kind == _NEAREST_EVEN:
        return t
    if kind == _ADJUSTED:
        if floating is float:
            return lq_adjusted_f32(t, rounding)
        else:
            return lq_adjusted_f64(t, rounding)
    if floating is float:
        return lq_stochastic_f32(t, rounding.seed, index)
    else:
        return lq_stochastic_f64(t, rounding.seed, index)


cdef int _rounding_of(
    lq_rounding *rounding, int mode, uint64_t seed, tuple index, int ndim,
    int64_t *index_steps,
) except -1:
    # A def's rounding arguments: the mode, checked, and `index`, (first, step along each of
    # the ndim axes of x): the stochastic index of x[0, ...] and its steps.
    cdef int d
    if not LQ_HALF_EVEN <= mode <= LQ_STOCHASTIC:
        raise ValueError(f"unknown rounding mode {mode}")
    if len(index) != ndim + 1:
        raise ValueError(f"index must be (first, {ndim} steps), got {index!r}")
    lq_rounding_init(rounding, mode, seed)
    for d in range(ndim + 1):
        index_steps[d] = index[d]
    return 0


cdef inline Py_ssize_t _step(Py_ssize_t stride_bytes, Py_ssize_t itemsize) noexcept nogil:
    return stride_bytes // itemsize  # whole items: _view checks it


# The kernels index their views without bounds checks, so each def checks the views it is
# handed first: every view has the shape the kernel will index (out that of x, per-group
# parameters (outer, groups, inner)) and strides of whole items. Arguments that disagree raise
# ValueError instead of reading or writing outside a buffer.

cdef int _view(
    str name, const Py_ssize_t *shape, const Py_ssize_t *strides, Py_ssize_t itemsize,
    const Py_ssize_t *expected, int ndim,
) except -1:
    cdef int d
    for d in range(ndim):
        if shape[d] != expected[d]:
            raise ValueError(
                f"{name} has shape {tuple(shape[i] for i in range(ndim))}, the kernel indexes "
                f"{tuple(expected[i] for i in range(ndim))}"
            )
        if strides[d] % itemsize:
            raise ValueError(f"{name} has strides of partial items")
    return 0


cdef Py_ssize_t _block_step(Py_ssize_t block, Py_ssize_t n) except -1:
    # Elements per group along the axis, as the kernels step by it: a block past the axis's
    # end is the whole axis, so that `a + block` never overflows.
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    return block if block <= n else max(n, 1)


cdef void _groups_3d(const Py_ssize_t *shape, Py_ssize_t block, Py_ssize_t *groups) noexcept:
    # The (outer, groups, inner) shape of per-group parameters of an (outer, n, inner) array.
    groups[0] = shape[0]
    groups[1] = (shape[1] + block - 1) // block
    groups[2] = shape[2]


def minmax(const floating[:, :] x):
    """Return ``(lo, hi, nan_seen)`` of a 2-D view in one pass; NaN is left out.

    With no value other than NaN, ``(lo, hi)`` is ``(inf, -inf)``.
    """
    cdef floating lo = INFINITY, hi = -INFINITY
    cdef int nan_seen = 0
    cdef Py_ssize_t i, step = _step(x.strides[1], sizeof(floating))
    _view("x", x.shape, x.strides, sizeof(floating), x.shape, 2)
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                nan_seen |= lq_minmax_f32(&x[i, 0], x.shape[1], step, &lo, &hi)
            else:
                nan_seen |= lq_minmax_f64(&x[i, 0], x.shape[1], step, &lo, &hi)
    return lo, hi, nan_seen != 0


def nan_stats(const floating[:, :] x):
    """Return ``(nan_count, first_nan)``: first_nan is a row-major index, or -1."""
    cdef Py_ssize_t i, j, rows = x.shape[0], cols = x.shape[1]
    cdef Py_ssize_t nan_count = 0, first_nan = -1
    cdef floating v
    with nogil:
        for i in range(rows):
            for j in range(cols):
                v = x[i, j]
                if v != v:
                    if nan_count == 0:
                        first_nan = i * cols + j
                    nan_count += 1
    return nan_count, first_nan


cdef inline int _quantize_row_pass_as(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n, floating scale,
    floating lo, floating hi, int32_t zero_point, codes *out, Py_ssize_t out_step,
    bint nan_as_zero, int kind, const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    # Fast form: lo = qmin - zero_point and hi = qmax - zero_point are exact integers, so
    # saturating before rounding is the same as after, and the rounding can convert too.
    cdef Py_ssize_t j
    cdef floating t
    cdef int nan_seen = 0, is_nan
    # A copy the loop's stores cannot alias (uint8 codes may alias anything): read once.
    cdef lq_rounding mode = rounding[0]
    for j in range(n):
        t = x[j * x_step] / scale
        is_nan = t != t  # exactly where x is NaN (scale is positive and finite)
        nan_seen |= is_nan
        if nan_as_zero:
            t = 0 if is_nan else t
        t = t if t > lo else lo  # one max instruction; a NaN left here becomes lo
        t = t if t < hi else hi
        t = _rounded(t, kind, &mode, index + j * index_step)
        out[j * out_step] = <codes>(_irint(t) + zero_point)
    return nan_seen


cdef inline int _quantize_row_pass(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n, floating scale,
    floating lo, floating hi, int32_t zero_point, codes *out, Py_ssize_t out_step,
    bint nan_as_zero, const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    if _kind(rounding) == _NEAREST_EVEN:
        return _quantize_row_pass_as(
            x, x_step, n, scale, lo, hi, zero_point, out, out_step, nan_as_zero, _NEAREST_EVEN,
            rounding, index, index_step,
        )
    if _kind(rounding) == _ADJUSTED:
        return _quantize_row_pass_as(
            x, x_step, n, scale, lo, hi, zero_point, out, out_step, nan_as_zero, _ADJUSTED,
            rounding, index, index_step,
        )
    return _quantize_row_pass_as(
        x, x_step, n, scale, lo, hi, zero_point, out, out_step, nan_as_zero, _STOCHASTIC,
        rounding, index, index_step,
    )


cdef inline int _quantize_row(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n, floating scale,
    floating lo, floating hi, int32_t zero_point, codes *out, Py_ssize_t out_step,
    const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    # The first pass leaves NaN out of its arithmetic (the common case: none); a row that had
    # NaN is done again, storing each as 0.0 would be (SPEC §5 nan="zero").
    if _quantize_row_pass(
        x, x_step, n, scale, lo, hi, zero_point, out, out_step, False, rounding, index,
        index_step,
    ):
        return _quantize_row_pass(
            x, x_step, n, scale, lo, hi, zero_point, out, out_step, True, rounding, index,
            index_step,
        )
    return 0


cdef inline int _quantize_run_params_as(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step,
    int kind, const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    # Wide form, in int64: any int32 zero point, and parameters that may change from element
    # to element (steps of 0 for one scale and zero point).
    cdef Py_ssize_t j
    cdef floating t, limit = <floating>WIDE_LIMIT
    cdef int64_t q
    cdef int nan_seen = 0, is_nan
    # A copy the loop's stores cannot alias (uint8 codes may alias anything): read once.
    cdef lq_rounding mode = rounding[0]
    for j in range(n):
        t = _rint(_rounded(x[j * x_step] / scale[j * scale_step], kind, &mode,
                           index + j * index_step))
        is_nan = t != t
        nan_seen |= is_nan
        t = 0 if is_nan else t
        t = -limit if t < -limit else t
        t = limit if t > limit else t
        q = <int64_t>t + zero_point[j * zero_point_step]
        q = qmin if q < qmin else q
        q = qmax if q > qmax else q
        out[j * out_step] = <codes>q
    return nan_seen


cdef inline int _quantize_run_params(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step,
    const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    if _kind(rounding) == _NEAREST_EVEN:
        return _quantize_run_params_as(
            x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out,
            out_step, _NEAREST_EVEN, rounding, index, index_step,
        )
    if _kind(rounding) == _ADJUSTED:
        return _quantize_run_params_as(
            x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out,
            out_step, _ADJUSTED, rounding, index, index_step,
        )
    return _quantize_run_params_as(
        x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out,
        out_step, _STOCHASTIC, rounding, index, index_step,
    )


cdef inline int _quantize_run_params_fast_loop(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step,
    int kind, const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating t, lo, hi
    # In int32, which the vector units convert to float: the fast form's bounds fit it.
    cdef int32_t z, qmin32 = <int32_t>qmin, qmax32 = <int32_t>qmax
    cdef int nan_seen = 0
    # A copy the loop's stores cannot alias (uint8 codes may alias anything): read once.
    cdef lq_rounding mode = rounding[0]
    for j in range(n):
        z = zero_point[j * zero_point_step]
        lo, hi = <floating>(qmin32 - z), <floating>(qmax32 - z)
        t = x[j * x_step] / scale[j * scale_step]
        nan_seen |= t != t
        t = t if t > lo else lo
        t = t if t < hi else hi
        t = _rounded(t, kind, &mode, index + j * index_step)
        out[j * out_step] = <codes>(_irint(t) + z)
    if nan_seen:
        return _quantize_run_params(
            x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax,
            out, out_step, rounding, index, index_step,
        )
    return 0


cdef inline int _quantize_run_params_fast_as(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step,
    int kind, const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    # Contiguous runs with literal steps: the loops the compiler vectorizes (a zero point
    # shared by the run, step 0, is loaded once).
    if x_step == 1 and scale_step == 1 and out_step == 1 and zero_point_step == 1:
        return _quantize_run_params_fast_loop(
            x, 1, n, scale, 1, zero_point, 1, qmin, qmax, out, 1, kind, rounding, index,
            index_step,
        )
    if x_step == 1 and scale_step == 1 and out_step == 1 and zero_point_step == 0:
        return _quantize_run_params_fast_loop(
            x, 1, n, scale, 1, zero_point, 0, qmin, qmax, out, 1, kind, rounding, index,
            index_step,
        )
    return _quantize_run_params_fast_loop(
        x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out, out_step,
        kind, rounding, index, index_step,
    )


cdef inline int _quantize_run_params_fast(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step,
    const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    # The fast form (see _quantize_row_pass_as) with parameters that change along the run,
    # for zero points whose bounds are all within FAST_BOUND; a run with NaN is redone wide.
    if _kind(rounding) == _NEAREST_EVEN:
        return _quantize_run_params_fast_as(
            x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out,
            out_step, _NEAREST_EVEN, rounding, index, index_step,
        )
    if _kind(rounding) == _ADJUSTED:
        return _quantize_run_params_fast_as(
            x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out,
            out_step, _ADJUSTED, rounding, index, index_step,
        )
    return _quantize_run_params_fast_as(
        x, x_step, n, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out, out_step,
        _STOCHASTIC, rounding, index, index_step,
    )


cdef inline int _quantize_each(
    const floating *x, Py_ssize_t x_step, Py_ssize_t x_row_step, Py_ssize_t rows, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step, Py_ssize_t out_row_step,
    bint stream, const lq_rounding *rounding, int64_t index, int64_t index_row_step,
    int64_t index_step,
) noexcept nogil:
    # `rows` runs with the same parameters, which change at every element, fast form:
    # contiguous float32 runs by lq_kernels.h's vector loop (AVX-512 builds, deterministic
    # rounding modes; runs with a NaN are redone wide), else the loops above, run by run.
    cdef int done = -1, nan_seen = 0
    cdef Py_ssize_t r
    if (
        floating is float and x_step == 1 and scale_step == 1 and out_step == 1
        and (zero_point_step == 0 or zero_point_step == 1)
    ):
        done = lq_quantize_each(
            _code(out), x, x_row_step, rows, n, scale, zero_point, zero_point_step, <int>qmin,
            <int>qmax, out, out_row_step, stream, rounding.mode,
        )
    if done == 0:
        return 0
    for r in range(rows):
        if done == 1:
            nan_seen |= _quantize_run_params(
                x + r * x_row_step, x_step, n, scale, scale_step, zero_point, zero_point_step,
                qmin, qmax, out + r * out_row_step, out_step, rounding,
                index + r * index_row_step, index_step,
            )
        else:
            nan_seen |= _quantize_run_params_fast(
                x + r * x_row_step, x_step, n, scale, scale_step, zero_point, zero_point_step,
                qmin, qmax, out + r * out_row_step, out_step, rounding,
                index + r * index_row_step, index_step,
            )
    return nan_seen


cdef inline int _quantize_run(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n, floating scale, int32_t zero_point,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step,
    bint stream,  # a contiguous run may be written with non-temporal stores
    const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    # A run with one scale and zero point: the fast form where the zero point allows it.
    cdef floating lo = <floating>(qmin - zero_point), hi = <floating>(qmax - zero_point)
    if not (-LQ_FAST_BOUND <= qmin - zero_point and qmax - zero_point <= LQ_FAST_BOUND):
        return _quantize_run_params(
            x, x_step, n, &scale, 0, &zero_point, 0, qmin, qmax, out, out_step, rounding, index,
            index_step,
        )
    # Whole lines by lq_kernels.h where streamed, or where its conversions round a mode that
    # the loops below do in several instructions.
    if x_step == 1 and out_step == 1 and (
        stream or (rounding.mode != LQ_HALF_EVEN and n * <Py_ssize_t>sizeof(codes) >= 64)
    ):
        return _quantize_row_lines(
            x, n, scale, lo, hi, zero_point, out, stream, rounding, index, index_step
        )
    if x_step == 1 and out_step == 1:  # the contiguous loop, vectorized
        return _quantize_row(
            x, 1, n, scale, lo, hi, zero_point, out, 1, rounding, index, index_step
        )
    return _quantize_row(
        x, x_step, n, scale, lo, hi, zero_point, out, out_step, rounding, index, index_step
    )


cdef inline int _quantize_row_lines(
    const floating *x, Py_ssize_t n, floating scale, floating lo, floating hi,
    int32_t zero_point, codes *out, bint stream, const lq_rounding *rounding, int64_t index,
    int64_t index_step,
) noexcept nogil:
    # The whole cache lines of the row by lq_kernels.h, the ends by the Cython loop.
    cdef Py_ssize_t begin = 0, end = 0
    cdef int nan_seen = 0
    if floating is float:
        nan_seen = lq_quantize_lines(
            _code(out), x, n, scale, lo, hi, zero_point, out, rounding, index, index_step,
            stream, &begin, &end,
        )
    if nan_seen:  # redo the row, storing NaN as 0.0 would be
        return _quantize_row(
            x, 1, n, scale, lo, hi, zero_point, out, 1, rounding, index, index_step
        )
    nan_seen = _quantize_row(
        x, 1, begin, scale, lo, hi, zero_point, out, 1, rounding, index, index_step
    )
    return nan_seen | _quantize_row(
        x + end, 1, n - end, scale, lo, hi, zero_point, out + end, 1, rounding,
        index + end * index_step, index_step,
    )


def quantize(
    const floating[:, :] x,  # IN
    codes[:, :] out,  # OUT, same shape as x
    tuple index,  # (first, row step, step): the stochastic index of x[0, 0] and its steps
    double scale_value,  # a working-float value, so the narrowing below is exact
    int32_t zero_point,
    int64_t qmin,
    int64_t qmax,
    bint stream,  # write contiguous float32 rows with non-temporal stores (lq_kernels.h)
    int rounding_mode,  # ROUNDING_MODES
    uint64_t seed,  # stochastic rounding's
):
    """Quantize ``x`` into ``out`` (SPEC §2); return True if ``x`` held a NaN (stored as 0.0)."""
    cdef floating scale = <floating>scale_value
    cdef Py_ssize_t i, n = x.shape[1]
    cdef Py_ssize_t x_step = _step(x.strides[1], sizeof(floating))
    cdef Py_ssize_t out_step = _step(out.strides[1], sizeof(codes))
    cdef int nan_seen = 0
    cdef lq_rounding rounding
    cdef int64_t at[3]
    _rounding_of(&rounding, rounding_mode, seed, index, 2, at)
    _view("x", x.shape, x.strides, sizeof(floating), x.shape, 2)
    _view("out", out.shape, out.strides, sizeof(codes), x.shape, 2)
    with nogil:
        for i in range(x.shape[0]):
            nan_seen |= _quantize_run(
                &x[i, 0], x_step, n, scale, zero_point, qmin, qmax, &out[i, 0], out_step, stream,
                &rounding, at[0] + i * at[1], at[2],
            )
        if stream:
            lq_stream_fence()
    return nan_seen != 0


cdef inline void _dequantize_row(
    const codes *q, Py_ssize_t q_step, Py_ssize_t n, floating scale, int32_t zero_point,
    floating *out, Py_ssize_t out_step,
) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        out[j * out_step] = <floating>(<int32_t>q[j * q_step] - zero_point) * scale


cdef inline void _dequantize_run_params(
    const codes *q, Py_ssize_t q_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    floating *out, Py_ssize_t out_step,
) noexcept nogil:
    # Wide form, in int64: any int32 zero point, parameters that may change per element.
    cdef Py_ssize_t j
    for j in range(n):
        out[j * out_step] = (
            <floating>(<int64_t>q[j * q_step] - zero_point[j * zero_point_step])
            * scale[j * scale_step]
        )


cdef inline void _dequantize_run_params_fast_loop(
    const codes *q, Py_ssize_t q_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    floating *out, Py_ssize_t out_step,
) noexcept nogil:
    # Fast form, in int32 (every zero point within FAST_BOUND), parameters per element.
    cdef Py_ssize_t j
    for j in range(n):
        out[j * out_step] = (
            <floating>(<int32_t>q[j * q_step] - zero_point[j * zero_point_step])
            * scale[j * scale_step]
        )


cdef inline void _dequantize_each(
    const codes *q, Py_ssize_t q_step, Py_ssize_t n,
    const floating *scale, Py_ssize_t scale_step,
    const int32_t *zero_point, Py_ssize_t zero_point_step,
    floating *out, Py_ssize_t out_step, bint stream,
) noexcept nogil:
    # Parameters that change at every element, fast form: as _quantize_each, contiguous runs
    # by lq_kernels.h's vector loop where the build has one, else loops with literal steps.
    if q_step == 1 and scale_step == 1 and out_step == 1 and zero_point_step == 1:
        if floating is float:
            if lq_dequantize_each(_code(q), q, n, scale, zero_point, 1, out, stream) == 0:
                return
        _dequantize_run_params_fast_loop(q, 1, n, scale, 1, zero_point, 1, out, 1)
    elif q_step == 1 and scale_step == 1 and out_step == 1 and zero_point_step == 0:
        if floating is float:
            if lq_dequantize_each(_code(q), q, n, scale, zero_point, 0, out, stream) == 0:
                return
        _dequantize_run_params_fast_loop(q, 1, n, scale, 1, zero_point, 0, out, 1)
    else:
        _dequantize_run_params_fast_loop(
            q, q_step, n, scale, scale_step, zero_point, zero_point_step, out, out_step
        )


cdef inline void _dequantize_run(
    const codes *q, Py_ssize_t q_step, Py_ssize_t n, floating scale, int32_t zero_point,
    floating *out, Py_ssize_t out_step,
    bint stream,  # a contiguous run may be written with non-temporal stores
) noexcept nogil:
    # A run with one scale and zero point: in int32 where q - zero_point fits.
    if not -LQ_FAST_BOUND <= zero_point <= LQ_FAST_BOUND:
        _dequantize_run_params(q, q_step, n, &scale, 0, &zero_point, 0, out, out_step)
    elif stream and q_step == 1 and out_step == 1:
        _dequantize_row_streamed(q, n, scale, zero_point, out)
    elif q_step == 1 and out_step == 1:  # the contiguous loop, vectorized
        _dequantize_row(q, 1, n, scale, zero_point, out, 1)
    else:
        _dequantize_row(q, q_step, n, scale, zero_point, out, out_step)


cdef inline void _dequantize_row_streamed(
    const codes *q, Py_ssize_t n, floating scale, int32_t zero_point, floating *out,
) noexcept nogil:
    # The whole cache lines of the row by lq_kernels.h, the ends by the Cython loop.
    cdef Py_ssize_t begin = 0, end = 0
    if floating is float:
        lq_stream_dequantize(_code(q), q, n, scale, zero_point, out, &begin, &end)
    _dequantize_row(q, 1, begin, scale, zero_point, out, 1)
    _dequantize_row(q + end, 1, n - end, scale, zero_point, out + end, 1)


def dequantize(
    const codes[:, :] q,  # IN
    floating[:, :] out,  # OUT, same shape as q
    double scale_value,  # a value of the output float, so the narrowing below is exact
    int32_t zero_point,
    bint stream,  # write contiguous float32 rows with non-temporal stores (lq_kernels.h)
):
    """Dequantize ``q`` into ``out`` (SPEC §3): ``(q - zero_point) * scale``."""
    cdef floating scale = <floating>scale_value
    cdef Py_ssize_t i, n = q.shape[1]
    cdef Py_ssize_t q_step = _step(q.strides[1], sizeof(codes))
    cdef Py_ssize_t out_step = _step(out.strides[1], sizeof(floating))
    _view("q", q.shape, q.strides, sizeof(codes), q.shape, 2)
    _view("out", out.shape, out.strides, sizeof(floating), q.shape, 2)
    with nogil:
        for i in range(q.shape[0]):
            _dequantize_run(&q[i, 0], q_step, n, scale, zero_point, &out[i, 0], out_step, stream)
        if stream:
            lq_stream_fence()


# Packed codes (SPEC §8, linquant._formats): 8 // width codes a byte along each row, each
# row starting on a byte; 2- and 4-bit codes from the low bits up, 1-bit codes from the most
# significant bit down (the code's bit: code > 0). Codes are already within their width
# (the API checks them), so packing keeps the width's low bits of each.

ctypedef fused small_codes:
    uint8_t
    int8_t


cdef int _packed_views(
    const Py_ssize_t *codes_shape, const Py_ssize_t *codes_strides, Py_ssize_t codes_itemsize,
    const Py_ssize_t *packed_shape, const Py_ssize_t *packed_strides, int width,
) except -1:
    cdef Py_ssize_t expected[2]
    if width not in (1, 2, 4):
        raise ValueError(f"width must be 1, 2 or 4, got {width}")
    expected[0] = codes_shape[0]
    expected[1] = (codes_shape[1] + 8 // width - 1) // (8 // width)
    _view("codes", codes_shape, codes_strides, codes_itemsize, codes_shape, 2)
    _view("packed", packed_shape, packed_strides, 1, expected, 2)
    return 0


# Contiguous rows, one loop per width (the compiler vectorizes each), reading and writing
# codes as their bytes: a signed code's low bits are its two's complement.

cdef inline void _pack_row_4(const uint8_t *q, Py_ssize_t n, uint8_t *out) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n // 2):
        out[j] = (q[2 * j] & 15) | (q[2 * j + 1] << 4)
    if n % 2:
        out[n // 2] = q[n - 1] & 15


cdef inline void _pack_row_2(const uint8_t *q, Py_ssize_t n, uint8_t *out) noexcept nogil:
    cdef Py_ssize_t j, k
    for j in range(n // 4):
        out[j] = (q[4 * j] & 3) | ((q[4 * j + 1] & 3) << 2) | ((q[4 * j + 2] & 3) << 4) | (
            q[4 * j + 3] << 6
        )
    if n % 4:
        out[n // 4] = 0
        for k in range(n - n % 4, n):
            out[n // 4] |= (q[k] & 3) << (2 * (k % 4))


cdef inline void _pack_row_1(const uint8_t *q, Py_ssize_t n, uint8_t *out) noexcept nogil:
    # The bit of a code is 1 for the codes 1 and +1 (0 and -1 give 0): its byte equals 1.
    cdef Py_ssize_t j, k
    for j in range(n // 8):
        out[j] = (
            ((q[8 * j] == 1) << 7) | ((q[8 * j + 1] == 1) << 6) | ((q[8 * j + 2] == 1) << 5)
            | ((q[8 * j + 3] == 1) << 4) | ((q[8 * j + 4] == 1) << 3)
            | ((q[8 * j + 5] == 1) << 2) | ((q[8 * j + 6] == 1) << 1) | (q[8 * j + 7] == 1)
        )
    if n % 8:
        out[n // 8] = 0
        for k in range(n - n % 8, n):
            out[n // 8] |= (q[k] == 1) << (7 - k % 8)


cdef inline void _unpack_row_4(const uint8_t *p, Py_ssize_t n, uint8_t *out, bint signed) noexcept nogil:
    cdef Py_ssize_t j
    if signed:  # the nibble sign-extended: (v ^ 8) - 8
        for j in range(n // 2):
            out[2 * j] = <uint8_t>(((p[j] & 15) ^ 8) - 8)
            out[2 * j + 1] = <uint8_t>(((p[j] >> 4) ^ 8) - 8)
    else:
        for j in range(n // 2):
            out[2 * j] = p[j] & 15
            out[2 * j + 1] = p[j] >> 4
    if n % 2:
        out[n - 1] = <uint8_t>(((p[n // 2] & 15) ^ 8) - 8) if signed else p[n // 2] & 15


# 1- and 2-bit codes unpack by table: the 8 or 4 codes of each byte, unsigned and signed,
# filled once at import and only read after.
cdef uint8_t _UNPACKED_1[2][256][8]
cdef uint8_t _UNPACKED_2[2][256][4]


cdef void _fill_unpack_tables() noexcept:
    cdef int signed, byte, k, value
    for signed in range(2):
        for byte in range(256):
            for k in range(8):
                value = (byte >> (7 - k)) & 1
                _UNPACKED_1[signed][byte][k] = <uint8_t>(2 * value - 1 if signed else value)
            for k in range(4):
                value = (byte >> (2 * k)) & 3
                _UNPACKED_2[signed][byte][k] = <uint8_t>((value ^ 2) - 2 if signed else value)


_fill_unpack_tables()


cdef inline void _unpack_row_2(const uint8_t *p, Py_ssize_t n, uint8_t *out, bint signed) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n // 4):
        memcpy(out + 4 * j, _UNPACKED_2[signed][p[j]], 4)
    if n % 4:
        memcpy(out + n - n % 4, _UNPACKED_2[signed][p[n // 4]], n % 4)


cdef inline void _unpack_row_1(const uint8_t *p, Py_ssize_t n, uint8_t *out, bint signed) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n // 8):
        memcpy(out + 8 * j, _UNPACKED_1[signed][p[j]], 8)
    if n % 8:
        memcpy(out + n - n % 8, _UNPACKED_1[signed][p[n // 8]], n % 8)


def pack(
    const small_codes[:, :] q,  # IN, each code within width bits
    int width,  # 1, 2 or 4
    uint8_t[:, :] out,  # OUT, (rows, ceil(n / (8 // width)))
):
    """Pack the rows of the codes ``q`` into bytes (SPEC §8)."""
    _packed_views(q.shape, q.strides, sizeof(small_codes), out.shape, out.strides, width)
    cdef Py_ssize_t i, j, k, n = q.shape[1], m = out.shape[1]
    cdef int per_byte = 8 // width, slot
    cdef uint8_t mask = (1 << width) - 1, byte, code
    cdef bint contiguous = q.strides[1] == sizeof(small_codes) and out.strides[1] == 1
    with nogil:
        for i in range(q.shape[0]):
            if contiguous and width == 4:
                _pack_row_4(<const uint8_t *>&q[i, 0], n, &out[i, 0])
            elif contiguous and width == 2:
                _pack_row_2(<const uint8_t *>&q[i, 0], n, &out[i, 0])
            elif contiguous and width == 1:
                _pack_row_1(<const uint8_t *>&q[i, 0], n, &out[i, 0])
            else:
                for j in range(m):
                    byte = 0
                    for slot in range(per_byte):
                        k = j * per_byte + slot
                        if k < n:
                            if width == 1:
                                code = q[i, k] == 1
                                byte |= code << (7 - slot)
                            else:
                                code = <uint8_t>q[i, k] & mask
                                byte |= code << (slot * width)
                    out[i, j] = byte


def unpack(
    const uint8_t[:, :] packed,  # IN, (rows, ceil(n / (8 // width)))
    int width,  # 1, 2 or 4
    small_codes[:, :] out,  # OUT, (rows, n): unsigned codes, or signed ones sign-extended
):
    """Unpack the rows of ``packed`` into codes (SPEC §8)."""
    _packed_views(out.shape, out.strides, sizeof(small_codes), packed.shape, packed.strides, width)
    cdef Py_ssize_t i, j, n = out.shape[1]
    cdef int per_byte = 8 // width
    cdef int mask = (1 << width) - 1, half = 1 << (width - 1), value
    cdef bint signed = small_codes is int8_t
    cdef bint contiguous = packed.strides[1] == 1 and out.strides[1] == sizeof(small_codes)
    with nogil:
        for i in range(out.shape[0]):
            if contiguous and width == 4:
                _unpack_row_4(&packed[i, 0], n, <uint8_t *>&out[i, 0], signed)
            elif contiguous and width == 2:
                _unpack_row_2(&packed[i, 0], n, <uint8_t *>&out[i, 0], signed)
            elif contiguous and width == 1:
                _unpack_row_1(&packed[i, 0], n, <uint8_t *>&out[i, 0], signed)
            else:
                for j in range(n):
                    if width == 1:
                        value = (packed[i, j // 8] >> (7 - j % 8)) & 1
                        if signed:
                            value = 2 * value - 1
                    else:
                        value = (packed[i, j // per_byte] >> (j % per_byte * width)) & mask
                        if signed:
                            value = (value ^ half) - half
                    out[i, j] = <small_codes>value


# Per-axis and per-block kernels. Arrays come as (outer, n, inner) views around the axis
# (linquant._groups); parameters and accumulators as (outer, blocks, inner) views with zero
# strides where they are shared (per-axis: all of outer and inner). Element [o, a, i] belongs
# to group [o, a // block, i] (block = 1 per-axis). A run that shares one scale and zero point
# takes the per-tensor loops above; parameters that change along a run take the wide form.


cdef inline int _minmax_run_each(
    const floating *x, Py_ssize_t x_step, Py_ssize_t x_row_step, Py_ssize_t rows, Py_ssize_t n,
    floating *lo, Py_ssize_t lo_step, floating *hi, Py_ssize_t hi_step,
) noexcept nogil:
    # Fold x[r * x_row_step + j] of each of the `rows` runs into lo[j], hi[j]: NaN fails both
    # comparisons and is only reported.
    cdef Py_ssize_t j, r
    cdef floating v
    cdef int nan_seen = 0
    if x_step == 1 and lo_step == 1 and hi_step == 1:  # contiguous: lq_kernels.h, vectorized
        if floating is float:
            return lq_minmax_each_f32(x, x_row_step, rows, n, lo, hi)
        else:
            return lq_minmax_each_f64(x, x_row_step, rows, n, lo, hi)
    for r in range(rows):
        for j in range(n):
            v = x[r * x_row_step + j * x_step]
            nan_seen |= v != v
            if v < lo[j * lo_step]:
                lo[j * lo_step] = v
            if v > hi[j * hi_step]:
                hi[j * hi_step] = v
    return nan_seen


cdef inline int _minmax_run(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n, floating *lo, floating *hi,
) noexcept nogil:
    if floating is float:
        return lq_minmax_f32(x, n, x_step, lo, hi)
    else:
        return lq_minmax_f64(x, n, x_step, lo, hi)


def group_minmax(
    const floating[:, :, :] x,  # IN
    floating[:, :, :] lo,  # IN/OUT: folded into
    floating[:, :, :] hi,  # IN/OUT: folded into
    Py_ssize_t block,
):
    """Fold each group's values into ``lo`` and ``hi``; return True if ``x`` held a NaN."""
    cdef Py_ssize_t o, a, end, n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t groups[3]
    block = _block_step(block, n)
    _groups_3d(x.shape, block, groups)
    _view("x", x.shape, x.strides, sizeof(floating), x.shape, 3)
    _view("lo", lo.shape, lo.strides, sizeof(floating), groups, 3)
    _view("hi", hi.shape, hi.strides, sizeof(floating), groups, 3)
    cdef Py_ssize_t x0 = _step(x.strides[0], sizeof(floating))
    cdef Py_ssize_t x1 = _step(x.strides[1], sizeof(floating))
    cdef Py_ssize_t x2 = _step(x.strides[2], sizeof(floating))
    cdef Py_ssize_t lo0 = _step(lo.strides[0], sizeof(floating))
    cdef Py_ssize_t hi0 = _step(hi.strides[0], sizeof(floating))
    cdef Py_ssize_t lo1 = _step(lo.strides[1], sizeof(floating))
    cdef Py_ssize_t lo2 = _step(lo.strides[2], sizeof(floating))
    cdef Py_ssize_t hi1 = _step(hi.strides[1], sizeof(floating))
    cdef Py_ssize_t hi2 = _step(hi.strides[2], sizeof(floating))
    cdef int nan_seen = 0
    with nogil:
        if inner == 1 and block == 1 and lo0 == 0 and hi0 == 0 and x.shape[0] > 0:
            # per-axis: all rows share their ranges
            nan_seen = _minmax_run_each(
                &x[0, 0, 0], x1, x0, x.shape[0], n, &lo[0, 0, 0], lo1, &hi[0, 0, 0], hi1
            )
        else:
            for o in range(x.shape[0]):
                if inner == 1 and block == 1:  # a group per element along the axis
                    nan_seen |= _minmax_run_each(
                        &x[o, 0, 0], x1, 0, 1, n, &lo[o, 0, 0], lo1, &hi[o, 0, 0], hi1
                    )
                elif inner == 1:  # runs of `block` elements along the axis
                    a = 0
                    while a < n:
                        end = min(n, a + block)
                        nan_seen |= _minmax_run(
                            &x[o, a, 0], x1, end - a, &lo[o, a // block, 0], &hi[o, a // block, 0]
                        )
                        a = end
                elif lo2 == 0 and hi2 == 0:  # each row is one group
                    for a in range(n):
                        nan_seen |= _minmax_run(
                            &x[o, a, 0], x2, inner, &lo[o, a // block, 0], &hi[o, a // block, 0]
                        )
                else:  # the rows of a block share their groups
                    a = 0
                    while a < n:
                        end = min(n, a + block - a % block)
                        nan_seen |= _minmax_run_each(
                            &x[o, a, 0], x2, x1, end - a, inner, &lo[o, a // block, 0], lo2,
                            &hi[o, a // block, 0], hi2,
                        )
                        a = end
    return nan_seen != 0


cdef inline int _quantize_blocks_vector(
    const floating *x, Py_ssize_t n, Py_ssize_t block,
    const floating *scale, Py_ssize_t scale_step,
    const block_zero_point *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, bint stream, int rounding_mode,
) noexcept nogil:
    # Contiguous float32 runs of blocks by lq_kernels.h's vector loops (AVX-512 builds): 0 when
    # done, nonzero where the caller must do the run itself (a NaN, a zero point beyond the
    # fast form, stochastic rounding, no such build, zero points neither int32 nor of the code
    # type).
    if floating is not float:
        return -1
    elif block_zero_point is int32_t:
        return lq_quantize_blocks(
            _code(out), x, n, block, scale, scale_step, zero_point, zero_point_step, qmin, qmax,
            out, stream, rounding_mode,
        )
    elif _code(zero_point) == _code(out):  # zero points of the code type
        return lq_quantize_blocks_zcode(
            _code(out), x, n, block, scale, scale_step, zero_point, zero_point_step, qmin, qmax,
            out, stream, rounding_mode,
        )
    else:
        return -1


cdef inline int _quantize_block_row(
    const floating *x, Py_ssize_t x_step, Py_ssize_t n, Py_ssize_t block,
    const floating *scale, Py_ssize_t scale_step,
    const block_zero_point *zero_point, Py_ssize_t zero_point_step,
    int64_t qmin, int64_t qmax, codes *out, Py_ssize_t out_step, bint stream,
    const lq_rounding *rounding, int64_t index, int64_t index_step,
) noexcept nogil:
    # A run of blocks along the axis, block b's parameters at b * step: the vector loops where
    # they apply, else block by block. Nonzero if it held a NaN.
    cdef Py_ssize_t a = 0, end
    cdef int nan_seen = 0
    if x_step == 1 and out_step == 1 and (
        _quantize_blocks_vector(
            x, n, block, scale, scale_step, zero_point, zero_point_step, qmin, qmax, out, stream,
            rounding.mode,
        ) == 0
    ):
        return 0
    while a < n:
        end = min(n, a + block)
        nan_seen |= _quantize_run(
            x + a * x_step, x_step, end - a, scale[a // block * scale_step],
            zero_point[a // block * zero_point_step], qmin, qmax, out + a * out_step, out_step,
            False, rounding, index + a * index_step, index_step,
        )
        a = end
    return nan_seen


def group_quantize(
    const floating[:, :, :] x,  # IN
    codes[:, :, :] out,  # OUT, same shape as x
    tuple index,  # (first, 3 steps): the stochastic index of x[0, 0, 0] and its steps
    const floating[:, :, :] scale,  # IN, per group
    const int32_t[:, :, :] zero_point,  # IN, per group
    Py_ssize_t block,
    int64_t qmin,
    int64_t qmax,
    bint fast,  # every zero point's bounds are within FAST_BOUND
    bint stream,  # contiguous float32 runs may be written with non-temporal stores
    int rounding_mode,  # ROUNDING_MODES
    uint64_t seed,  # stochastic rounding's
):
    """Quantize each element with its group's parameters (SPEC §2); True if ``x`` held NaN."""
    cdef Py_ssize_t o, a, b, rows, n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t groups[3]
    block = _block_step(block, n)
    _groups_3d(x.shape, block, groups)
    _view("x", x.shape, x.strides, sizeof(floating), x.shape, 3)
    _view("out", out.shape, out.strides, sizeof(codes), x.shape, 3)
    _view("scale", scale.shape, scale.strides, sizeof(floating), groups, 3)
    _view("zero_point", zero_point.shape, zero_point.strides, sizeof(int32_t), groups, 3)
    cdef Py_ssize_t x0 = _step(x.strides[0], sizeof(floating))
    cdef Py_ssize_t x1 = _step(x.strides[1], sizeof(floating))
    cdef Py_ssize_t x2 = _step(x.strides[2], sizeof(floating))
    cdef Py_ssize_t out0 = _step(out.strides[0], sizeof(codes))
    cdef Py_ssize_t out1 = _step(out.strides[1], sizeof(codes))
    cdef Py_ssize_t out2 = _step(out.strides[2], sizeof(codes))
    cdef Py_ssize_t scale0 = _step(scale.strides[0], sizeof(floating))
    cdef Py_ssize_t scale1 = _step(scale.strides[1], sizeof(floating))
    cdef Py_ssize_t scale2 = _step(scale.strides[2], sizeof(floating))
    cdef Py_ssize_t zero0 = _step(zero_point.strides[0], sizeof(int32_t))
    cdef Py_ssize_t zero1 = _step(zero_point.strides[1], sizeof(int32_t))
    cdef Py_ssize_t zero2 = _step(zero_point.strides[2], sizeof(int32_t))
    cdef int nan_seen = 0
    cdef lq_rounding rounding
    cdef int64_t at[4]
    _rounding_of(&rounding, rounding_mode, seed, index, 3, at)
    with nogil:
        if inner == 1 and block == 1 and fast:  # parameters change at every element
            # Rows that share them (per-axis: all rows) go LQ_EACH_ROWS at a time.
            o = 0
            while o < x.shape[0]:
                rows = min(LQ_EACH_ROWS if scale0 == 0 and zero0 == 0 else 1, x.shape[0] - o)
                nan_seen |= _quantize_each(
                    &x[o, 0, 0], x1, x0, rows, n, &scale[o, 0, 0], scale1, &zero_point[o, 0, 0],
                    zero1, qmin, qmax, &out[o, 0, 0], out1, out0, stream, &rounding,
                    at[0] + o * at[1], at[1], at[2],
                )
                o += rows
        else:
            for o in range(x.shape[0]):
                if inner == 1 and block == 1:
                    nan_seen |= _quantize_run_params(
                        &x[o, 0, 0], x1, n, &scale[o, 0, 0], scale1, &zero_point[o, 0, 0], zero1,
                        qmin, qmax, &out[o, 0, 0], out1, &rounding, at[0] + o * at[1], at[2],
                    )
                elif inner == 1:  # runs of `block` elements along the axis share parameters
                    nan_seen |= _quantize_block_row(
                        &x[o, 0, 0], x1, n, block, &scale[o, 0, 0], scale1, &zero_point[o, 0, 0],
                        zero1, qmin, qmax, &out[o, 0, 0], out1, stream, &rounding,
                        at[0] + o * at[1], at[2],
                    )
                else:
                    a = 0
                    while a < n:
                        b = a // block
                        # Rows of one block share their parameters: up to LQ_EACH_ROWS at a time.
                        rows = min(LQ_EACH_ROWS, (b + 1) * block - a, n - a)
                        if scale2 == 0 and zero2 == 0:  # the row shares its parameters
                            rows = 1
                            nan_seen |= _quantize_run(
                                &x[o, a, 0], x2, inner, scale[o, b, 0], zero_point[o, b, 0],
                                qmin, qmax, &out[o, a, 0], out2, stream, &rounding,
                                at[0] + o * at[1] + a * at[2], at[3],
                            )
                        elif fast:
                            nan_seen |= _quantize_each(
                                &x[o, a, 0], x2, x1, rows, inner, &scale[o, b, 0], scale2,
                                &zero_point[o, b, 0], zero2, qmin, qmax, &out[o, a, 0], out2,
                                out1, stream, &rounding, at[0] + o * at[1] + a * at[2], at[2],
                                at[3],
                            )
                        else:
                            rows = 1
                            nan_seen |= _quantize_run_params(
                                &x[o, a, 0], x2, inner, &scale[o, b, 0], scale2,
                                &zero_point[o, b, 0], zero2, qmin, qmax, &out[o, a, 0], out2,
                                &rounding, at[0] + o * at[1] + a * at[2], at[3],
                            )
                        a += rows
        if stream:
            lq_stream_fence()
    return nan_seen != 0


def block_quantize(
    const floating[:, :, :] x,  # IN: (outer, n, 1), blocks along the middle axis
    codes[:, :, :] out,  # OUT, same shape as x
    tuple index,  # (first, 3 steps): the stochastic index of x[0, 0, 0] and its steps
    const floating[:, :, :] scale,  # IN, per block
    const codes[:, :, :] zero_point,  # IN, per block, of the code type (ONNX's y_zero_point)
    Py_ssize_t block,
    int64_t qmin,
    int64_t qmax,
    bint stream,  # contiguous float32 runs may be written with non-temporal stores
    int rounding_mode,  # ROUNDING_MODES
    uint64_t seed,  # stochastic rounding's
):
    """group_quantize for blocks along the innermost axis, reading zero points of the code
    type in place instead of an int32 copy of them; True if ``x`` held NaN."""
    cdef Py_ssize_t o, n = x.shape[1]
    cdef Py_ssize_t groups[3]
    block = _block_step(block, n)
    _groups_3d(x.shape, block, groups)
    if x.shape[2] != 1:
        raise ValueError("block_quantize takes blocks along the innermost axis: inner must be 1")
    _view("x", x.shape, x.strides, sizeof(floating), x.shape, 3)
    _view("out", out.shape, out.strides, sizeof(codes), x.shape, 3)
    _view("scale", scale.shape, scale.strides, sizeof(floating), groups, 3)
    _view("zero_point", zero_point.shape, zero_point.strides, sizeof(codes), groups, 3)
    cdef Py_ssize_t x1 = _step(x.strides[1], sizeof(floating))
    cdef Py_ssize_t out1 = _step(out.strides[1], sizeof(codes))
    cdef Py_ssize_t scale1 = _step(scale.strides[1], sizeof(floating))
    cdef Py_ssize_t zero1 = _step(zero_point.strides[1], sizeof(codes))
    cdef int nan_seen = 0
    cdef lq_rounding rounding
    cdef int64_t at[4]
    _rounding_of(&rounding, rounding_mode, seed, index, 3, at)
    with nogil:
        for o in range(x.shape[0]):
            nan_seen |= _quantize_block_row(
                &x[o, 0, 0], x1, n, block, &scale[o, 0, 0], scale1, &zero_point[o, 0, 0], zero1,
                qmin, qmax, &out[o, 0, 0], out1, stream, &rounding, at[0] + o * at[1], at[2],
            )
        if stream:
            lq_stream_fence()
    return nan_seen != 0


def group_dequantize(
    const codes[:, :, :] q,  # IN
    floating[:, :, :] out,  # OUT, same shape as q
    const floating[:, :, :] scale,  # IN, per group
    const int32_t[:, :, :] zero_point,  # IN, per group
    Py_ssize_t block,
    bint fast,  # every zero point is within FAST_BOUND
    bint stream,  # contiguous float32 runs may be written with non-temporal stores
):
    """Dequantize each element with its group's parameters (SPEC §3)."""
    cdef Py_ssize_t o, a, b, end, n = q.shape[1], inner = q.shape[2]
    cdef Py_ssize_t groups[3]
    block = _block_step(block, n)
    _groups_3d(q.shape, block, groups)
    _view("q", q.shape, q.strides, sizeof(codes), q.shape, 3)
    _view("out", out.shape, out.strides, sizeof(floating), q.shape, 3)
    _view("scale", scale.shape, scale.strides, sizeof(floating), groups, 3)
    _view("zero_point", zero_point.shape, zero_point.strides, sizeof(int32_t), groups, 3)
    cdef Py_ssize_t q1 = _step(q.strides[1], sizeof(codes))
    cdef Py_ssize_t q2 = _step(q.strides[2], sizeof(codes))
    cdef Py_ssize_t out1 = _step(out.strides[1], sizeof(floating))
    cdef Py_ssize_t out2 = _step(out.strides[2], sizeof(floating))
    cdef Py_ssize_t scale1 = _step(scale.strides[1], sizeof(floating))
    cdef Py_ssize_t scale2 = _step(scale.strides[2], sizeof(floating))
    cdef Py_ssize_t zero1 = _step(zero_point.strides[1], sizeof(int32_t))
    cdef Py_ssize_t zero2 = _step(zero_point.strides[2], sizeof(int32_t))
    with nogil:
        if inner == 1 and block == 1 and fast:  # parameters change at every element
            for o in range(q.shape[0]):
                _dequantize_each(
                    &q[o, 0, 0], q1, n, &scale[o, 0, 0], scale1, &zero_point[o, 0, 0], zero1,
                    &out[o, 0, 0], out1, stream,
                )
        else:
            for o in range(q.shape[0]):
                if inner == 1 and block == 1:
                    _dequantize_run_params(
                        &q[o, 0, 0], q1, n, &scale[o, 0, 0], scale1, &zero_point[o, 0, 0], zero1,
                        &out[o, 0, 0], out1,
                    )
                elif inner == 1:
                    a = 0
                    while a < n:
                        b, end = a // block, min(n, a + block)
                        _dequantize_run(
                            &q[o, a, 0], q1, end - a, scale[o, b, 0], zero_point[o, b, 0],
                            &out[o, a, 0], out1, False,
                        )
                        a = end
                else:
                    for a in range(n):
                        b = a // block
                        if scale2 == 0 and zero2 == 0:
                            _dequantize_run(
                                &q[o, a, 0], q2, inner, scale[o, b, 0], zero_point[o, b, 0],
                                &out[o, a, 0], out2, stream,
                            )
                        elif fast:
                            _dequantize_each(
                                &q[o, a, 0], q2, inner, &scale[o, b, 0], scale2,
                                &zero_point[o, b, 0], zero2, &out[o, a, 0], out2, stream,
                            )
                        else:
                            _dequantize_run_params(
                                &q[o, a, 0], q2, inner, &scale[o, b, 0], scale2,
                                &zero_point[o, b, 0], zero2, &out[o, a, 0], out2,
                            )
        if stream:
            lq_stream_fence()


cdef inline int _block_params(
    floating lo, floating hi, int bits, bint signed, bint include_zero,
    floating *scale, int32_t *zero_point,
) noexcept nogil:
    # SPEC §4 for one block, the arithmetic of linquant._params (asymmetric_params and
    # symmetric_scale) to the bit; 0, or nonzero where that raises (the caller then takes the
    # path that raises with the message).
    cdef int64_t qmax = (1 << bits) - 1, steps
    cdef floating span, zero = 0
    cdef double initial
    if lo > hi:  # no values: the degenerate rule
        lo = hi = zero
    lo, hi = lo + zero, hi + zero  # -0.0 as +0.0
    if not (isfinite(lo) and isfinite(hi)):
        return 1
    if signed:
        span = -lo if -lo > hi else hi
        steps = (1 << (bits - 1)) - 1
    else:
        if include_zero:
            lo = lo if lo < zero else zero
            hi = hi if hi > zero else zero
        span = hi - lo
        steps = qmax
    if not isfinite(span):
        return 1
    scale[0] = 1 if span == 0 else span / <floating>steps
    if scale[0] == 0:
        return 1
    zero_point[0] = 0
    if not signed:
        initial = <double>(<floating>0 - lo / scale[0])
        if include_zero:
            initial = 0 if initial < 0 else (<double>qmax if initial > qmax else initial)
        initial = rint(initial)
        if not (isfinite(initial) and -2147483648.0 <= initial <= 2147483647.0):
            return 1
        zero_point[0] = <int32_t>initial
    return 0


cdef inline int _block_dynamic_vector(
    const floating *x, Py_ssize_t n, Py_ssize_t block, int bits, bint signed,
    bint include_zero, int64_t qmin, int64_t qmax, floating *scale, Py_ssize_t scale_step,
    int32_t *zero_point, Py_ssize_t zero_point_step, codes *out, bint stream,
    int rounding_mode,
) noexcept nogil:
    # A contiguous float32 row by lq_kernels.h's vector loops (AVX-512 builds), 16 blocks'
    # SPEC §4 at once: 0 when done, nonzero where the caller must do the row itself (a NaN,
    # parameters that raise or leave the fast form, stochastic rounding, no such build).
    if floating is float:
        return lq_block_dynamic(
            _code(out), x, n, block, bits, signed, include_zero, qmin, qmax, scale, scale_step,
            zero_point, zero_point_step, out, stream, rounding_mode,
        )
    else:
        return -1


def block_dynamic_quantize(
    const floating[:, :] x,  # IN: rows of blocks (runs of a row: linquant._groups.as_runs)
    codes[:, :] out,  # OUT, same shape as x
    tuple index,  # (first, row step, step): the stochastic index of x[0, 0] and its steps
    floating[:, :] scale,  # OUT, one per block
    int32_t[:, :] zero_point,  # OUT, one per block
    Py_ssize_t block,
    int bits,
    bint signed,
    bint include_zero,
    bint nan_raises,
    int64_t qmin,
    int64_t qmax,
    bint stream,  # contiguous float32 rows may be written with non-temporal stores
    int rounding_mode,  # ROUNDING_MODES
    uint64_t seed,  # stochastic rounding's
):
    """Dynamic quantization of groups that are runs of ``block`` values of a row (per-block
    along the innermost axis, per-axis channels along the outermost) in one read of ``x``:
    each block's range, parameters (SPEC §4) and codes while it is in the cache. Returns False where the general path must
    take over: a block whose parameters raise, or a NaN with ``nan_raises``."""
    cdef Py_ssize_t o, a, b, end, n = x.shape[1]
    cdef Py_ssize_t x_step = _step(x.strides[1], sizeof(floating))
    cdef Py_ssize_t out_step = _step(out.strides[1], sizeof(codes))
    cdef Py_ssize_t scale_step = _step(scale.strides[1], sizeof(floating))
    cdef Py_ssize_t zero_point_step = _step(zero_point.strides[1], sizeof(int32_t))
    cdef floating lo, hi
    cdef int nan_seen
    cdef bint done = True
    cdef lq_rounding rounding
    cdef int64_t at[3]
    cdef Py_ssize_t groups[3]
    cdef Py_ssize_t shape[3]
    shape[:] = [x.shape[0], n, 1]
    block = _block_step(block, n)
    _groups_3d(shape, block, groups)
    _view("x", x.shape, x.strides, sizeof(floating), x.shape, 2)
    _view("out", out.shape, out.strides, sizeof(codes), x.shape, 2)
    _view("scale", scale.shape, scale.strides, sizeof(floating), groups, 2)
    _view("zero_point", zero_point.shape, zero_point.strides, sizeof(int32_t), groups, 2)
    _rounding_of(&rounding, rounding_mode, seed, index, 2, at)
    with nogil:
        for o in range(x.shape[0]):
            if x_step == 1 and out_step == 1 and n and _block_dynamic_vector(
                &x[o, 0], n, block, bits, signed, include_zero, qmin, qmax, &scale[o, 0],
                scale_step, &zero_point[o, 0], zero_point_step, &out[o, 0], stream, rounding_mode,
            ) == 0:
                continue
            a = b = 0
            while a < n and done:
                end = min(n, a + block)
                lo, hi = INFINITY, -INFINITY
                if floating is float:
                    nan_seen = lq_minmax_f32(&x[o, a], end - a, x_step, &lo, &hi)
                else:
                    nan_seen = lq_minmax_f64(&x[o, a], end - a, x_step, &lo, &hi)
                if (nan_seen and nan_raises) or _block_params(
                    lo, hi, bits, signed, include_zero, &scale[o, b], &zero_point[o, b]
                ):
                    done = False
                    break
                _quantize_run(
                    &x[o, a], x_step, end - a, scale[o, b], zero_point[o, b], qmin, qmax,
                    &out[o, a], out_step, False, &rounding, at[0] + o * at[1] + a * at[2], at[2],
                )
                a, b = end, b + 1
        if stream:
            lq_stream_fence()
    return done


include "_gguf.pxi"
include "_histogram.pxi"
