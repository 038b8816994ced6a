# Calibration histograms (SPEC §10): the kernel over _c/lq_histogram.h, included by
# _kernels.pxi. The GIL is released.

cdef extern from "lq_histogram.h" nogil:
    enum:
        LQ_NO_WIDTH
    int lq_histogram_f32(const float *p, Py_ssize_t n, Py_ssize_t step, int log2_bins,
                         int64_t *counts, int *exponent, float *lo, float *hi)
    int lq_histogram_f64(const double *p, Py_ssize_t n, Py_ssize_t step, int log2_bins,
                         int64_t *counts, int *exponent, double *lo, double *hi)

# The exponent of a histogram that has no bin width yet (only zeros seen).
NO_WIDTH = LQ_NO_WIDTH


def histogram(
    const floating[:, :] x,  # IN
    int log2_bins,  # bins = 2**log2_bins, from 4 to 24
    int64_t[::1] counts,  # IN/OUT: 2 * bins counts (x >= 0 by bin, then x < 0)
    int exponent,  # the bins' width 2**exponent so far, or NO_WIDTH
):
    """Fold ``x`` into a histogram of ``|x|`` (SPEC §10); return ``(lo, hi, status,
    exponent)``: the range of ``x``, the status (0; 1 if ``x`` holds a NaN; else 2 if it
    holds an infinity: the rest is then void), and the bins' width's new exponent."""
    cdef floating lo = INFINITY, hi = -INFINITY
    cdef Py_ssize_t i, step = _step(x.strides[1], sizeof(floating))
    cdef int status = 0, row
    _view("x", x.shape, x.strides, sizeof(floating), x.shape, 2)
    if not 4 <= log2_bins <= 24 or counts.shape[0] != 2 << log2_bins:
        raise ValueError("counts must hold 2 * 2**log2_bins values, log2_bins from 4 to 24")
    if x.shape[1] == 0:
        return lo, hi, 0, exponent
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                row = lq_histogram_f32(&x[i, 0], x.shape[1], step, log2_bins, &counts[0],
                                       &exponent, &lo, &hi)
            else:
                row = lq_histogram_f64(&x[i, 0], x.shape[1], step, log2_bins, &counts[0],
                                       &exponent, &lo, &hi)
            if row == 1:  # a NaN: its error comes first (SPEC §5)
                status = 1
                break
            if row == 2:  # an infinity: only a NaN still matters
                status = 2
    return lo, hi, status, exponent
