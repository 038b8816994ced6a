/*
 * The parts of linquant's kernels that Cython cannot express: a min/max loop that the
 * compiler may vectorize, exact rounding where the instruction set has no vector rounding
 * instruction, and CPU feature detection. Included by every build of _kernels.pxi.
 */
#ifndef LINQUANT_LOOPS_H
#define LINQUANT_LOOPS_H

#include <math.h>
#include <stddef.h>

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

#define LQ_DEFINE_MINMAX(T, NAME)                                                           \
    static inline int NAME(const T *p, ptrdiff_t n, ptrdiff_t step, T *lo_io, T *hi_io)   \
    {                                                                                       \
        T lo = *lo_io, hi = *hi_io;                                                         \
        int nan = 0;                                                                        \
        ptrdiff_t i;                                                                        \
        if (step == 1) {                                                                    \
            LQ_SIMD_MINMAX                                                                  \
            for (i = 0; i < n; i++) {                                                       \
                T v = p[i];                                                                 \
                nan |= v != v;                                                              \
                lo = v < lo ? v : lo;                                                       \
                hi = v > hi ? v : hi;                                                       \
            }                                                                               \
        } else {                                                                            \
            LQ_SIMD_MINMAX                                                                  \
            for (i = 0; i < n; i++) {                                                       \
                T v = p[i * step];                                                          \
                nan |= v != v;                                                              \
                lo = v < lo ? v : lo;                                                       \
                hi = v > hi ? v : hi;                                                       \
            }                                                                               \
        }                                                                                   \
        *lo_io = lo;                                                                        \
        *hi_io = hi;                                                                        \
        return nan;                                                                         \
    }

/* Return nonzero if p[0], p[step], ... holds a NaN; fold the others into [*lo_io, *hi_io]. */
LQ_DEFINE_MINMAX(float, lq_minmax_f32)
LQ_DEFINE_MINMAX(double, lq_minmax_f64)

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
 * The widest kernel build this CPU (and its operating system) can run: 2 for AVX-512
 * (F, BW, DQ, VL), 1 for AVX2, 0 for the baseline. GCC's and clang's __builtin_cpu_supports
 * also check that the OS saves the wide registers. Other compilers and architectures: 0.
 */
static inline int lq_cpu_level(void)
{
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return 2;
    if (__builtin_cpu_supports("avx2"))
        return 1;
#endif
    return 0;
}

#endif /* LINQUANT_LOOPS_H */
