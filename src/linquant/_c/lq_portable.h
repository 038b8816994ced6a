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
#include <string.h>

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
 * Rounding modes (SPEC §2.1), in the order of linquant._rounding.MODES. Each rounds t, already
 * x / scale (and, in the fast form, saturated to integer bounds: every mode is monotonic and
 * keeps integers, so saturating first is exact), to an integer-valued float; the conversion
 * after it is then exact. NaN stays NaN and ±inf stay ±inf in every mode.
 */
enum { LQ_HALF_EVEN, LQ_HALF_AWAY, LQ_HALF_UP, LQ_FLOOR, LQ_CEIL, LQ_TRUNC, LQ_STOCHASTIC };
typedef struct {
    int mode;
    uint64_t seed;
    /* The deterministic modes other than half to even, with one loop for all: r = rint(t)
       and d = t - r (exact: |d| <= 1/2) give r + (d > up) - (d < down), where up and down
       are [0] for t > 0 and [1] otherwise. 0.5 is never exceeded, and "d > just below 0.5"
       is "d = 1/2": a tie. */
    float up_f32[2], down_f32[2];
    double up_f64[2], down_f64[2];
} lq_rounding;
static inline void lq_rounding_init(lq_rounding *r, int mode, uint64_t seed)
{
    const double never = 0.5, tie = nextafter(0.5, 0.0), any = 0.0;
    double up[2] = {never, never}, down[2] = {-never, -never};
    int k;
    switch (mode) {
    case LQ_HALF_AWAY: up[0] = tie, down[1] = -tie; break;
    case LQ_HALF_UP: up[0] = up[1] = tie; break;
    case LQ_FLOOR: down[0] = down[1] = any; break;
    case LQ_CEIL: up[0] = up[1] = any; break;
    case LQ_TRUNC: down[0] = any, up[1] = any; break;
    default: break;
    }
    r->mode = mode;
    r->seed = seed;
    for (k = 0; k < 2; k++) {
        r->up_f64[k] = up[k], r->down_f64[k] = down[k];
        /* the float32 neighbour of 0.5: (float)tie would round back up to 0.5 */
        r->up_f32[k] = up[k] == tie ? nextafterf(0.5f, 0.0f) : (float)up[k];
        r->down_f32[k] = down[k] == -tie ? -nextafterf(0.5f, 0.0f) : (float)down[k];
    }
}
#define LQ_DEFINE_ADJUSTED(T, NAME, RINT, SUFFIX)                                             \
    static inline T NAME(T t, const lq_rounding *r)                                           \
    {                                                                                         \
        T nearest = RINT(t), d = t - nearest;                                                 \
        int other = !(t > 0);                                                                 \
        T up = other ? r->up_##SUFFIX[1] : r->up_##SUFFIX[0];                                 \
        T down = other ? r->down_##SUFFIX[1] : r->down_##SUFFIX[0];                           \
        return nearest + (T)(d > up) - (T)(d < down);                                         \
    }
LQ_DEFINE_ADJUSTED(float, lq_adjusted_f32, lq_rint_f32, f32)
LQ_DEFINE_ADJUSTED(double, lq_adjusted_f64, lq_rint_f64, f64)

/* SplitMix64(seed, i): the i-th output (0-based) of the generator seeded with seed. */
#define LQ_GOLDEN_GAMMA 0x9E3779B97F4A7C15ull
static inline uint64_t lq_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline uint64_t lq_splitmix64(uint64_t seed, int64_t i)
{
    return lq_mix64(seed + ((uint64_t)i + 1u) * LQ_GOLDEN_GAMMA);
}
/* u < 2**53 as a double, exactly, by its bits: x86 before AVX-512 has no vector conversion of
   64-bit integers, so a cast would keep the loops scalar. 2**52 + k for k < 2**52 is the
   double whose mantissa is k. */
static inline double lq_u53_to_f64(uint64_t u)
{
    uint64_t high = 0x4330000000000000ull | (u >> 1), low = 0x4330000000000000ull | (u & 1u);
    double a, b;
    memcpy(&a, &high, sizeof a);
    memcpy(&b, &low, sizeof b);
    return (a - 0x1p52) * 2.0 + (b - 0x1p52);
}
/* Stochastic rounding of the element with index i (SPEC §2.1): floor(t), plus one where
   U < frac * 2**53, frac = t - floor(t) in float64. rint(t) - (rint(t) > t) is floor(t),
   by the rint the build vectorizes. */
#define LQ_DEFINE_STOCHASTIC(T, NAME, RINT)                                                   \
    static inline T NAME(T t, uint64_t seed, int64_t i)                                       \
    {                                                                                         \
        T nearest = RINT(t), floor = nearest - (T)(nearest > t);                              \
        double fraction = (double)t - (double)floor;                                          \
        double draw = lq_u53_to_f64(lq_splitmix64(seed, i) >> 11);                           \
        return floor + (T)(draw < fraction * 0x1p53);                                         \
    }
LQ_DEFINE_STOCHASTIC(float, lq_stochastic_f32, lq_rint_f32)
LQ_DEFINE_STOCHASTIC(double, lq_stochastic_f64, lq_rint_f64)

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
