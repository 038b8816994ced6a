/*
 * Histograms of |x| for calibration (SPEC §10), one pass: values are taken a piece of
 * LQ_HISTOGRAM_PIECE at a time, the piece's range first (from memory, vectorized), then its
 * values counted (from the cache). Bins have width 2^e, the least power of two with
 * max|x| < bins * 2^e for the values so far; a piece with a larger max|x| first coarsens the
 * counts so far by adding neighbouring bins, which is exact (floor(floor(a / w) / 2^s) ==
 * floor(a / (w * 2^s))), so the counts depend on the values alone.
 *
 * counts holds 2 * bins int64: bin k of x >= 0 (-0.0 included) at k, of x < 0 at bins + k.
 * Zeros count in bin 0 before any width is set (LQ_NO_WIDTH), which is bin 0 of every width.
 */
#ifndef LINQUANT_LQ_HISTOGRAM_H
#define LINQUANT_LQ_HISTOGRAM_H

#include "lq_portable.h"

#define LQ_HISTOGRAM_PIECE 4096
#define LQ_NO_WIDTH (-(1 << 30))

/* Counts by floor(a / 2^from) to counts by floor(a / 2^to), to >= from, in place. */
static inline void lq_histogram_coarsen(int64_t *counts, ptrdiff_t bins, int from, int to)
{
    int shift = to - from > 62 ? 62 : to - from, half;
    ptrdiff_t i;
    if (shift <= 0)
        return;
    for (half = 0; half < 2; half++) { /* ascending: bin i >> shift <= i is done with */
        int64_t *c = counts + half * bins;
        for (i = 1; i < bins; i++) {
            int64_t v = c[i];
            c[i] = 0;
            c[i >> shift] += v;
        }
    }
}

#if defined(_MSC_VER) && !defined(__clang__)
#define LQ_SIMD_LOOP
#else
#define LQ_SIMD_LOOP _Pragma("omp simd")
#endif

/*
 * Fold p[0], p[step], ... (n values) into [*lo, *hi], the counts and *exponent (the bins'
 * width's, or LQ_NO_WIDTH). Returns 0; 1 at the first piece holding a NaN, where it stops;
 * else 2 if a piece held an infinity (from there on it only looks for a NaN, which the
 * caller's error names first, as SPEC §5 says): the caller raises, the counts are void.
 * The bin of |v| is the truncation of |v| * 2^-e: in T when 2^-e is a normal T (a product
 * by a power of two, exact; a result below 1 may be rounded but stays below 1), else in
 * double with 2^-e as two factors that are each a double. A piece's bins are computed first
 * (a loop the compiler vectorizes), then counted; a bin is never past the last, whatever
 * the arguments.
 */
#define LQ_DEFINE_HISTOGRAM(T, NAME, MINMAX, FREXP, LDEXP, FABS, MIN_EXP, MAX_EXP)             \
    static inline int NAME(const T *p, ptrdiff_t n, ptrdiff_t step, int log2_bins,            \
                           int64_t *counts, int *exponent, T *lo, T *hi)                      \
    {                                                                                         \
        ptrdiff_t bins = (ptrdiff_t)1 << log2_bins, start, i;                                 \
        int32_t bin[LQ_HISTOGRAM_PIECE], top = (int32_t)bins - 1, negative = (int32_t)bins;   \
        int infinite = 0;                                                                     \
        for (start = 0; start < n; start += LQ_HISTOGRAM_PIECE) {                             \
            const T *piece = p + start * step;                                                \
            ptrdiff_t m = n - start < LQ_HISTOGRAM_PIECE ? n - start : LQ_HISTOGRAM_PIECE;    \
            T piece_lo = (T)INFINITY, piece_hi = (T)-INFINITY, amax;                          \
            int e, k;                                                                         \
            if (MINMAX(piece, m, step, &piece_lo, &piece_hi))                                 \
                return 1;                                                                     \
            infinite |= isinf(piece_lo) || isinf(piece_hi);                                   \
            if (infinite)                                                                     \
                continue;                                                                     \
            *lo = piece_lo < *lo ? piece_lo : *lo;                                            \
            *hi = piece_hi > *hi ? piece_hi : *hi;                                            \
            amax = -piece_lo > piece_hi ? -piece_lo : piece_hi;                               \
            if (amax == 0) { /* all zeros: bin 0, whatever the width */                       \
                counts[0] += m;                                                               \
                continue;                                                                     \
            }                                                                                 \
            FREXP(amax, &k);                                                                  \
            e = k - log2_bins;                                                                \
            if (*exponent == LQ_NO_WIDTH || e > *exponent) {                                  \
                if (*exponent != LQ_NO_WIDTH)                                                 \
                    lq_histogram_coarsen(counts, bins, *exponent, e);                         \
                *exponent = e;                                                                \
            }                                                                                 \
            if (step == 1 && -*exponent >= (MIN_EXP) && -*exponent <= (MAX_EXP)) {            \
                T scale = LDEXP((T)1, -*exponent), limit = (T)bins;                           \
                LQ_SIMD_LOOP                                                                  \
                for (i = 0; i < m; i++) {                                                     \
                    T v = piece[i], scaled = FABS(v) * scale;                                 \
                    bin[i] = (scaled < limit ? (int32_t)scaled : top) + (v < 0 ? negative : 0); \
                }                                                                             \
            } else {                                                                          \
                double first = ldexp(1.0, -(*exponent / 2));                                  \
                double second = ldexp(1.0, -(*exponent - *exponent / 2));                     \
                for (i = 0; i < m; i++) {                                                     \
                    T v = piece[i * step];                                                    \
                    double scaled = fabs((double)v) * first * second;                         \
                    bin[i] = (scaled < (double)bins ? (int32_t)scaled : top) + (v < 0 ? negative : 0); \
                }                                                                             \
            }                                                                                 \
            for (i = 0; i < m; i++)                                                           \
                counts[bin[i]]++;                                                             \
        }                                                                                     \
        return infinite ? 2 : 0;                                                              \
    }

/* the exponents of the normal powers of two: 2^-126 to 2^127, 2^-1022 to 2^1023 */
LQ_DEFINE_HISTOGRAM(float, lq_histogram_f32, lq_minmax_f32, frexpf, ldexpf, fabsf, -126, 127)
LQ_DEFINE_HISTOGRAM(double, lq_histogram_f64, lq_minmax_f64, frexp, ldexp, fabs, -1022, 1023)

#endif
