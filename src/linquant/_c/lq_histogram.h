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

#include <stdlib.h>

#include "lq_portable.h"

#define LQ_HISTOGRAM_PIECE 4096
#define LQ_NO_WIDTH (-(1 << 30))
/* Tallies (see lq_histogram_tally): for calls of at least LQ_TALLY_MIN_PER_BIN values a
 * count and up to LQ_TALLY_MAX_LOG2_BINS bins (64 KiB of tallies for 2048 bins); flushed
 * before any of their uint32 could overflow. */
#define LQ_TALLY_MIN_PER_BIN 32
#define LQ_TALLY_MAX_LOG2_BINS 12
#define LQ_TALLY_FLUSH ((ptrdiff_t)1 << 31)

/* Add the tallies of the 2 * bins counts (four a count, side by side) to the counts and
 * zero them. */
static inline void lq_histogram_flush(uint32_t *tally, int64_t *counts, ptrdiff_t bins)
{
    ptrdiff_t k;
    for (k = 0; k < 2 * bins; k++) {
        uint32_t *t = tally + 4 * k;
        counts[k] += (int64_t)t[0] + t[1] + t[2] + t[3];
        t[0] = t[1] = t[2] = t[3] = 0;
    }
}

/*
 * Count m bins: into tallies of four uint32 a count, consecutive values going to different
 * ones (a run of one bin is four independent chains of increments, not one chain through
 * memory; the four side by side share a cache line), or straight into the counts.
 */
static inline void lq_histogram_tally(const int32_t *bin, ptrdiff_t m, uint32_t *tally,
                                      int64_t *counts)
{
    ptrdiff_t i = 0;
    if (tally != NULL)
        for (; i + 4 <= m; i += 4) {
            tally[4 * bin[i]]++;
            tally[4 * bin[i + 1] + 1]++;
            tally[4 * bin[i + 2] + 2]++;
            tally[4 * bin[i + 3] + 3]++;
        }
    for (; i < m; i++)
        counts[bin[i]]++;
}

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
        ptrdiff_t bins = (ptrdiff_t)1 << log2_bins, start, i, tallied = 0;                    \
        int32_t bin[LQ_HISTOGRAM_PIECE], top = (int32_t)bins - 1, negative = (int32_t)bins;   \
        int infinite = 0;                                                                     \
        uint32_t *tally = log2_bins <= LQ_TALLY_MAX_LOG2_BINS && n / bins >= LQ_TALLY_MIN_PER_BIN \
                              ? (uint32_t *)calloc((size_t)(8 * bins), sizeof(uint32_t))      \
                              : NULL; /* (none: counted straight in) */                       \
        for (start = 0; start < n; start += LQ_HISTOGRAM_PIECE) {                             \
            const T *piece = p + start * step;                                                \
            ptrdiff_t m = n - start < LQ_HISTOGRAM_PIECE ? n - start : LQ_HISTOGRAM_PIECE;    \
            T piece_lo = (T)INFINITY, piece_hi = (T)-INFINITY, amax;                          \
            int e, k;                                                                         \
            if (MINMAX(piece, m, step, &piece_lo, &piece_hi)) {                               \
                free(tally);                                                                  \
                return 1;                                                                     \
            }                                                                                 \
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
                if (*exponent != LQ_NO_WIDTH) {                                               \
                    if (tally != NULL)                                                        \
                        lq_histogram_flush(tally, counts, bins);                              \
                    lq_histogram_coarsen(counts, bins, *exponent, e);                         \
                }                                                                             \
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
            lq_histogram_tally(bin, m, tally, counts);                                        \
            tallied += m;                                                                     \
            if (tally != NULL && tallied >= LQ_TALLY_FLUSH - LQ_HISTOGRAM_PIECE) {            \
                lq_histogram_flush(tally, counts, bins);                                      \
                tallied = 0;                                                                  \
            }                                                                                 \
        }                                                                                     \
        if (tally != NULL)                                                                    \
            lq_histogram_flush(tally, counts, bins);                                          \
        free(tally);                                                                          \
        return infinite ? 2 : 0;                                                              \
    }

/* the exponents of the normal powers of two: 2^-126 to 2^127, 2^-1022 to 2^1023 */
LQ_DEFINE_HISTOGRAM(float, lq_histogram_f32, lq_minmax_f32, frexpf, ldexpf, fabsf, -126, 127)
LQ_DEFINE_HISTOGRAM(double, lq_histogram_f64, lq_minmax_f64, frexp, ldexp, fabs, -1022, 1023)

#endif
