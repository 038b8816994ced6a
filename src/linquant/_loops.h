/*
 * The parts of linquant's kernels that Cython cannot express: a min/max loop that the
 * compiler may vectorize, exact rounding where the instruction set has no vector rounding
 * instruction, and CPU feature detection. Included by every build of _kernels.pxi.
 */
#ifndef LINQUANT_LOOPS_H
#define LINQUANT_LOOPS_H

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
 * Large results, written with non-temporal stores (AVX-512 builds): whole cache lines go to
 * memory without first being read into the cache, which saves a third of the memory traffic
 * of quantizing float32 into 8-bit codes (16M values: 2.45 ms instead of 3.05 here). The
 * arithmetic is that of the Cython loops, to the bit:
 * - quantize, fast form: lo = qmin - zp and hi = qmax - zp are exact integers, so saturating
 *   first and rounding after is exact; vcvtps2dq rounds half to even (the default mode, as
 *   rint does); max(t, lo) returns lo for a NaN t (the x86 rule: the second operand), so a
 *   NaN leaves only the returned flag, and the caller redoes a row that had one;
 * - dequantize, fast form: (float)((int32)q - zp) * scale.
 * Each function does the part of a contiguous run whose output is 64-byte aligned and whole
 * lines, sets [*begin, *end) to it, and leaves the rest to the Cython loops; builds without
 * AVX-512 do nothing (*begin = *end = 0).
 */
#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define LQ_STREAM 1
static inline void lq_line_span(const void *out, ptrdiff_t n, ptrdiff_t itemsize,
                                ptrdiff_t *begin, ptrdiff_t *end)
{
    ptrdiff_t per_line = 64 / itemsize;
    ptrdiff_t head = (ptrdiff_t)((64u - (uintptr_t)out % 64u) % 64u) / itemsize;
    *begin = head < n ? head : n;
    *end = *begin + (n - *begin) / per_line * per_line;
}
/* One vector of 16 quantized int32 codes, zero point added. */
static inline __m512i lq_quantize16(const float *x, __m512 scale, __m512 lo, __m512 hi,
                                    __m512i zero_point, __mmask16 *nan)
{
    __m512 t = _mm512_div_ps(_mm512_loadu_ps(x), scale);
    *nan |= _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
    t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
    return _mm512_add_epi32(_mm512_cvtps_epi32(t), zero_point);
}
#define LQ_QUANTIZE_SETUP                                                                     \
    const __m512 vs = _mm512_set1_ps(scale), vlo = _mm512_set1_ps(lo);                      \
    const __m512 vhi = _mm512_set1_ps(hi);                                                    \
    const __m512i vz = _mm512_set1_epi32(zero_point);                                         \
    __mmask16 nan = 0;                                                                        \
    ptrdiff_t i;                                                                              \
    lq_line_span(out, n, sizeof(*out), begin, end)
#define LQ_DEFINE_QUANTIZE8(CODE, NAME)                                                       \
    static inline int NAME(const float *x, ptrdiff_t n, float scale, float lo, float hi,     \
                           int zero_point, CODE *out, ptrdiff_t *begin, ptrdiff_t *end)      \
    {                                                                                         \
        LQ_QUANTIZE_SETUP;                                                                    \
        for (i = *begin; i < *end; i += 64) {                                                 \
            __m512i line = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(                      \
                lq_quantize16(x + i, vs, vlo, vhi, vz, &nan)));                              \
            line = _mm512_inserti32x4(line, _mm512_cvtepi32_epi8(                            \
                lq_quantize16(x + i + 16, vs, vlo, vhi, vz, &nan)), 1);                      \
            line = _mm512_inserti32x4(line, _mm512_cvtepi32_epi8(                            \
                lq_quantize16(x + i + 32, vs, vlo, vhi, vz, &nan)), 2);                      \
            line = _mm512_inserti32x4(line, _mm512_cvtepi32_epi8(                            \
                lq_quantize16(x + i + 48, vs, vlo, vhi, vz, &nan)), 3);                      \
            _mm512_stream_si512((void *)(out + i), line);                                     \
        }                                                                                     \
        return nan != 0;                                                                      \
    }
#define LQ_DEFINE_QUANTIZE16(CODE, NAME)                                                      \
    static inline int NAME(const float *x, ptrdiff_t n, float scale, float lo, float hi,     \
                           int zero_point, CODE *out, ptrdiff_t *begin, ptrdiff_t *end)      \
    {                                                                                         \
        LQ_QUANTIZE_SETUP;                                                                    \
        for (i = *begin; i < *end; i += 32) {                                                 \
            __m512i line = _mm512_castsi256_si512(_mm512_cvtepi32_epi16(                    \
                lq_quantize16(x + i, vs, vlo, vhi, vz, &nan)));                              \
            line = _mm512_inserti64x4(line, _mm512_cvtepi32_epi16(                           \
                lq_quantize16(x + i + 16, vs, vlo, vhi, vz, &nan)), 1);                      \
            _mm512_stream_si512((void *)(out + i), line);                                     \
        }                                                                                     \
        return nan != 0;                                                                      \
    }
/* WIDEN loads 16 codes into 16 int32. */
#define LQ_DEFINE_DEQUANTIZE(CODE, NAME, WIDEN)                                               \
    static inline void NAME(const CODE *q, ptrdiff_t n, float scale, int zero_point,        \
                            float *out, ptrdiff_t *begin, ptrdiff_t *end)                    \
    {                                                                                         \
        const __m512 vs = _mm512_set1_ps(scale);                                              \
        const __m512i vz = _mm512_set1_epi32(zero_point);                                     \
        ptrdiff_t i;                                                                          \
        lq_line_span(out, n, sizeof(*out), begin, end);                                       \
        for (i = *begin; i < *end; i += 16) {                                                 \
            __m512i shifted = _mm512_sub_epi32(WIDEN(q + i), vz);                             \
            _mm512_stream_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(shifted), vs));        \
        }                                                                                     \
    }
#define LQ_WIDEN_U8(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define LQ_WIDEN_I8(p) _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define LQ_WIDEN_U16(p) _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p)))
#define LQ_WIDEN_I16(p) _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(p)))
static inline void lq_stream_fence(void) { _mm_sfence(); }
#else
#define LQ_STREAM 0
#define LQ_DEFINE_QUANTIZE8(CODE, NAME)                                                       \
    static inline int NAME(const float *x, ptrdiff_t n, float scale, float lo, float hi,     \
                           int zero_point, CODE *out, ptrdiff_t *begin, ptrdiff_t *end)      \
    {                                                                                         \
        (void)x, (void)n, (void)scale, (void)lo, (void)hi, (void)zero_point, (void)out;      \
        *begin = *end = 0;                                                                    \
        return 0;                                                                             \
    }
#define LQ_DEFINE_QUANTIZE16 LQ_DEFINE_QUANTIZE8
#define LQ_DEFINE_DEQUANTIZE(CODE, NAME, WIDEN)                                               \
    static inline void NAME(const CODE *q, ptrdiff_t n, float scale, int zero_point,        \
                            float *out, ptrdiff_t *begin, ptrdiff_t *end)                    \
    {                                                                                         \
        (void)q, (void)n, (void)scale, (void)zero_point, (void)out;                           \
        *begin = *end = 0;                                                                    \
    }
static inline void lq_stream_fence(void) {}
#endif
LQ_DEFINE_QUANTIZE8(uint8_t, lq_stream_quantize_u8)
LQ_DEFINE_QUANTIZE8(int8_t, lq_stream_quantize_i8)
LQ_DEFINE_QUANTIZE16(uint16_t, lq_stream_quantize_u16)
LQ_DEFINE_QUANTIZE16(int16_t, lq_stream_quantize_i16)
LQ_DEFINE_DEQUANTIZE(uint8_t, lq_stream_dequantize_u8, LQ_WIDEN_U8)
LQ_DEFINE_DEQUANTIZE(int8_t, lq_stream_dequantize_i8, LQ_WIDEN_I8)
LQ_DEFINE_DEQUANTIZE(uint16_t, lq_stream_dequantize_u16, LQ_WIDEN_U16)
LQ_DEFINE_DEQUANTIZE(int16_t, lq_stream_dequantize_i16, LQ_WIDEN_I16)

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
