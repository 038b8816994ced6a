/*
 * Portable parts of linquant's kernels, for every build: min/max loops that the compiler may
 * vectorize, exact round-half-to-even where the instruction set has no vector rounding
 * instruction, the fast form's bound and the code types.
 */
#ifndef LINQUANT_LQ_PORTABLE_H
#define LINQUANT_LQ_PORTABLE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_MSC_VER) && !defined(__cplusplus) && !defined(inline)
#define inline __inline /* older MSVC C modes know only __inline */
#endif

/*
 * Compilers do not vectorize `lo = v < lo ? v : lo` on their own: reordering a min is only
 * allowed where NaN and signed zeros cannot tell, so they must be told (OpenMP SIMD, built
 * with -fopenmp-simd, no OpenMP runtime needed). The loop is NaN-exact even vectorized: a NaN
 * `v` fails `v < lo` and leaves the accumulator alone (x86 minps(v, lo) returns lo for a NaN
 * v, likewise), and NaN is reported separately. Of equal zeros either may be kept; the caller
 * turns -0.0 into +0.0.
 */
#if defined(_MSC_VER) && !defined(__clang__)
#define LQ_SIMD_MINMAX
#else
#define LQ_SIMD_MINMAX _Pragma("omp simd reduction(min:lo) reduction(max:hi) reduction(|:nan)")
#endif

#define LQ_DEFINE_MINMAX(T, NAME)                                                             \
    static inline int NAME(const T *p, ptrdiff_t n, ptrdiff_t step, T *lo_io, T *hi_io)       \
    {                                                                                         \
        T lo = *lo_io, hi = *hi_io;                                                           \
        int nan = 0;                                                                          \
        ptrdiff_t i;                                                                          \
        if (step == 1) {                                                                      \
            LQ_SIMD_MINMAX                                                                    \
            for (i = 0; i < n; i++) {                                                         \
                T v = p[i];                                                                   \
                nan |= v != v;                                                                \
                lo = v < lo ? v : lo;                                                         \
                hi = v > hi ? v : hi;                                                         \
            }                                                                                 \
        } else {                                                                              \
            LQ_SIMD_MINMAX                                                                    \
            for (i = 0; i < n; i++) {                                                         \
                T v = p[i * step];                                                            \
                nan |= v != v;                                                                \
                lo = v < lo ? v : lo;                                                         \
                hi = v > hi ? v : hi;                                                         \
            }                                                                                 \
        }                                                                                     \
        *lo_io = lo;                                                                          \
        *hi_io = hi;                                                                          \
        return nan;                                                                           \
    }

/* Return nonzero if p[0], p[step], ... holds a NaN; fold the others into [*lo_io, *hi_io]. */
LQ_DEFINE_MINMAX(float, lq_minmax_f32)
LQ_DEFINE_MINMAX(double, lq_minmax_f64)

/*
 * Element-wise: fold p[r * row_step + i] of `rows` runs of n values into lo[i] and hi[i]
 * (contiguous runs; per-axis ranges along the innermost axis, and the rows of a block whose
 * groups run along the rows). Eight runs at a time: lo[i] and hi[i] are then loaded and stored
 * once per eight values (a run at a time, rows of ranges as long as 4096 values left the L1
 * cache to the streaming input, and the pass took twice a quantize pass: bench/NOTES.md). NaN fails both comparisons and is only reported.
 */
#if defined(_MSC_VER) && !defined(__clang__)
#define LQ_SIMD_OR
#else
#define LQ_SIMD_OR _Pragma("omp simd reduction(|:nan)")
#endif
#define LQ_FOLD(k)                                                                            \
    v = p[(k) * row_step + i];                                                                \
    nan |= v != v;                                                                            \
    a = v < a ? v : a;                                                                        \
    b = v > b ? v : b
#define LQ_DEFINE_MINMAX_EACH(T, NAME)                                                        \
    static inline int NAME(const T *p, ptrdiff_t row_step, ptrdiff_t rows, ptrdiff_t n,       \
                           T *lo, T *hi)                                                      \
    {                                                                                         \
        int nan = 0;                                                                          \
        ptrdiff_t i;                                                                          \
        for (; rows >= 8; rows -= 8, p += 8 * row_step) {                                     \
            LQ_SIMD_OR                                                                        \
            for (i = 0; i < n; i++) {                                                         \
                T v, a = lo[i], b = hi[i];                                                    \
                LQ_FOLD(0); LQ_FOLD(1); LQ_FOLD(2); LQ_FOLD(3);                               \
                LQ_FOLD(4); LQ_FOLD(5); LQ_FOLD(6); LQ_FOLD(7);                               \
                lo[i] = a;                                                                    \
                hi[i] = b;                                                                    \
            }                                                                                 \
        }                                                                                     \
        for (; rows > 0; rows--, p += row_step) {                                             \
            LQ_SIMD_OR                                                                        \
            for (i = 0; i < n; i++) {                                                         \
                T v, a = lo[i], b = hi[i];                                                    \
                LQ_FOLD(0);                                                                   \
                lo[i] = a;                                                                    \
                hi[i] = b;                                                                    \
            }                                                                                 \
        }                                                                                     \
        return nan;                                                                           \
    }
LQ_DEFINE_MINMAX_EACH(float, lq_minmax_each_f32)
LQ_DEFINE_MINMAX_EACH(double, lq_minmax_each_f64)

/*
 * Round half to even, as rint in the default rounding mode. x86-64's baseline (SSE2) has no
 * vector rounding instruction, so a call to rintf would keep the quantize loop scalar. There,
 * for |t| < 2**23 (2**52 for double), (|t| + 2**23) - 2**23 rounds |t| to an integer, half to
 * even, exactly (the sum lies in [2**23, 2**24), where the spacing is 1); larger |t| already are
 * integers, and NaN fails the comparison and stays NaN. SSE arithmetic has no excess precision
 * (FLT_EVAL_METHOD 0) and no flag of the build allows reassociation, so this is exact.
 */
#if defined(__SSE2__) && !defined(__SSE4_1__) && (defined(__x86_64__) || defined(_M_X64))
static inline float lq_rint_f32(float t)
{
    float a = fabsf(t);
    float r = copysignf((a + 0x1p23f) - 0x1p23f, t);
    return a < 0x1p23f ? r : t;
}
static inline double lq_rint_f64(double t)
{
    double a = fabs(t);
    double r = copysign((a + 0x1p52) - 0x1p52, t);
    return a < 0x1p52 ? r : t;
}
#else
static inline float lq_rint_f32(float t) { return rintf(t); }
static inline double lq_rint_f64(double t) { return rint(t); }
#endif

/*
 * Round half to even and convert to int32, for |t| < 2**31. GCC vectorizes its irint
 * builtins into one instruction (cvtps2dq / cvtpd2dq, which round in the default mode) where a
 * rint followed by a truncating conversion takes two; elsewhere, exactly that pair.
 */
#if defined(__GNUC__) && !defined(__clang__)
static inline int lq_irint_f32(float t) { return __builtin_irintf(t); }
static inline int lq_irint_f64(double t) { return __builtin_irint(t); }
#else
static inline int lq_irint_f32(float t) { return (int)lq_rint_f32(t); }
static inline int lq_irint_f64(double t) { return (int)lq_rint_f64(t); }
#endif

/*
 * The kernels' fast form needs every bound |qmin - zero_point|, |qmax - zero_point| within
 * this (exact in float32, and in int32): saturating rint(x / scale) to [qmin - zp, qmax - zp]
 * in the float and adding zp after is then the same as adding zp first and saturating to
 * [qmin, qmax]. Read by the Cython kernels and, through them, by linquant._compiled.
 */
#define LQ_FAST_BOUND (1 << 24)

/* Code types, for the kernels that take one argument for all of them. */
enum { LQ_U8, LQ_I8, LQ_U16, LQ_I16 };

#endif /* LINQUANT_LQ_PORTABLE_H */
