/*
 * AVX-512 kernels along contiguous float32 runs with one scale and zero point (non-temporal
 * stores of large results) or with a scale and zero point per value (per-axis along the
 * innermost axis). Included by lq_kernels.h in AVX-512 builds only.
 */
#ifndef LINQUANT_LQ_AVX512_TENSOR_H
#define LINQUANT_LQ_AVX512_TENSOR_H

#include <immintrin.h>

#include "lq_portable.h"

/*
 * Large results, written with non-temporal stores (AVX-512 builds): whole cache lines go to
 * memory without first being read into the cache, which saves a third of the memory traffic
 * of quantizing float32 into 8-bit codes. The arithmetic is that of the Cython loops, to the
 * bit:
 * - quantize, fast form: lo = qmin - zp and hi = qmax - zp are exact integers, so saturating
 *   first and rounding after is exact, in every rounding mode; vcvtps2dq rounds half to even
 *   (the default mode, as rint does); max(t, lo) returns lo for a NaN t (the x86 rule: the
 *   second operand), so a NaN leaves only the returned flag, and the caller redoes a row
 *   that had one;
 * - dequantize, fast form: (float)((int32)q - zp) * scale.
 * Each function does the part of a contiguous run whose output is 64-byte aligned and whole
 * lines, sets [*begin, *end) to it, and leaves the rest to the Cython loops. Quantize also
 * stores lines (`stream` 0) for the rounding modes that the compiler's loops do slower.
 */
/* The vector helpers below take and return vectors: inlined, they stay in registers. */
#define LQ_VECTOR_INLINE static inline __attribute__((always_inline))
/* Row kernels stay functions of their own: inlined into the Cython kernels' large bodies, their
   loops were allocated fewer registers and ran slower. */
#define LQ_ROW_KERNEL static __attribute__((noinline))
static inline void lq_line_span(const void *out, ptrdiff_t n, ptrdiff_t itemsize,
                                ptrdiff_t *begin, ptrdiff_t *end)
{
    ptrdiff_t per_line = 64 / itemsize;
    ptrdiff_t head = (ptrdiff_t)((64u - (uintptr_t)out % 64u) % 64u) / itemsize;
    *begin = head < n ? head : n;
    *end = *begin + (n - *begin) / per_line * per_line;
}
/* Quotients t saturated to [lo, hi]; NaN is only reported (and becomes lo). */
LQ_VECTOR_INLINE __m512 lq_saturated16(__m512 t, __m512 lo, __m512 hi, __mmask16 *nan)
{
    *nan |= _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
    return _mm512_min_ps(_mm512_max_ps(t, lo), hi);
}
/*
 * Codes of 16 saturated quotients t (integers in the fast form's bounds: no overflow), in each
 * rounding mode (SPEC §2.1), to the bit of the Cython loops' lq_adjusted and lq_stochastic:
 * - half to even, floor, ceil, trunc: the conversion's own rounding (embedded, or the
 *   truncating conversion);
 * - half up: floor(t + 1/2) of the sum rounded down, which has the floor of the exact sum
 *   (every integer below 2**24 is a float32); half away: trunc(t ± 1/2), likewise rounded
 *   toward zero;
 * - stochastic: floor(t), plus one where U < frac * 2**53 (lq_stochastic16).
 */
#define LQ_ROUND_DOWN (_MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
#define LQ_ROUND_UP (_MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC)
#define LQ_ROUND_ZERO (_MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define LQ_CODES_HALF_EVEN(t, draws) _mm512_cvtps_epi32(t)
#define LQ_CODES_FLOOR(t, draws) _mm512_cvt_roundps_epi32(t, LQ_ROUND_DOWN)
#define LQ_CODES_CEIL(t, draws) _mm512_cvt_roundps_epi32(t, LQ_ROUND_UP)
#define LQ_CODES_TRUNC(t, draws) _mm512_cvttps_epi32(t)
#define LQ_CODES_HALF_UP(t, draws)                                                            \
    _mm512_cvt_roundps_epi32(_mm512_add_round_ps(t, _mm512_set1_ps(0.5f), LQ_ROUND_DOWN),     \
                             LQ_ROUND_DOWN)
/* copysign(1/2, t): t's sign bit with the other bits of 0.5f (a ternary logic of bits). */
#define LQ_HALF_WITH_SIGN(t)                                                                  \
    _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(t),                     \
                                                  _mm512_set1_epi32((int)0x80000000u),        \
                                                  _mm512_set1_epi32(0x3F000000), 0xEA))
#define LQ_CODES_HALF_AWAY(t, draws)                                                          \
    _mm512_cvttps_epi32(_mm512_add_round_ps(t, LQ_HALF_WITH_SIGN(t), LQ_ROUND_ZERO))
#define LQ_CODES_STOCHASTIC(t, draws) _mm512_cvtps_epi32(lq_stochastic16(t, draws))
/* The modes, for kernels defined once per mode: X(..., name suffix, CODES) for each. */
#define LQ_FOR_DETERMINISTIC(X, ...)                                                          \
    X(__VA_ARGS__, _half_even, LQ_CODES_HALF_EVEN)                                            \
    X(__VA_ARGS__, _half_away, LQ_CODES_HALF_AWAY)                                            \
    X(__VA_ARGS__, _half_up, LQ_CODES_HALF_UP)                                                \
    X(__VA_ARGS__, _floor, LQ_CODES_FLOOR)                                                    \
    X(__VA_ARGS__, _ceil, LQ_CODES_CEIL)                                                      \
    X(__VA_ARGS__, _trunc, LQ_CODES_TRUNC)
#define LQ_FOR_ROUNDING(X, ...)                                                               \
    LQ_FOR_DETERMINISTIC(X, __VA_ARGS__)                                                      \
    X(__VA_ARGS__, _stochastic, LQ_CODES_STOCHASTIC)
/* return NAME<mode suffix>(...) for the rounding mode `mode`. */
#define LQ_BY_ROUNDING(mode, NAME, ...)                                                       \
    switch (mode) {                                                                           \
    case LQ_HALF_EVEN: return NAME##_half_even(__VA_ARGS__);                                  \
    case LQ_HALF_AWAY: return NAME##_half_away(__VA_ARGS__);                                  \
    case LQ_HALF_UP: return NAME##_half_up(__VA_ARGS__);                                      \
    case LQ_FLOOR: return NAME##_floor(__VA_ARGS__);                                          \
    case LQ_CEIL: return NAME##_ceil(__VA_ARGS__);                                            \
    case LQ_TRUNC: return NAME##_trunc(__VA_ARGS__);                                          \
    default: return NAME##_stochastic(__VA_ARGS__);                                           \
    }
/*
 * Stochastic draws of a call's vectors, which must come in order: SplitMix64's
 * seed + (i + 1) * gamma of lanes 0-7 and 8-15 advance by 16 elements each time.
 */
typedef struct {
    __m512i z[2], advance;
} lq_draws;
LQ_VECTOR_INLINE void lq_draws_init(lq_draws *s, uint64_t seed, int64_t index,
                                    int64_t index_step)
{
    const uint64_t gamma_step = (uint64_t)index_step * LQ_GOLDEN_GAMMA;
    const __m512i lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    s->z[0] = _mm512_add_epi64(
        _mm512_set1_epi64((long long)(seed + ((uint64_t)index + 1u) * LQ_GOLDEN_GAMMA)),
        _mm512_mullo_epi64(lanes, _mm512_set1_epi64((long long)gamma_step)));
    s->z[1] = _mm512_add_epi64(s->z[0], _mm512_set1_epi64((long long)(8u * gamma_step)));
    s->advance = _mm512_set1_epi64((long long)(16u * gamma_step));
}
/* SplitMix64's mix but its last step, z ^ (z >> 31), which leaves the top 31 bits as they
   are: the float32 comparison below reads only the top 24. */
LQ_VECTOR_INLINE __m512i lq_premix8(__m512i z)
{
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    return _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                              _mm512_set1_epi64((long long)0x94D049BB133111EBull));
}
/* The definition itself, for 8 lanes: U = mixed >> 11 < (t - floor) * 2**53 in float64. */
LQ_VECTOR_INLINE __mmask8 lq_draw8(__m256 t, __m256 floor, __m512i premixed)
{
    __m512i mixed = _mm512_xor_si512(premixed, _mm512_srli_epi64(premixed, 31));
    __m512d fraction = _mm512_sub_pd(_mm512_cvtps_pd(t), _mm512_cvtps_pd(floor));
    __m512d draw = _mm512_cvtepu64_pd(_mm512_srli_epi64(mixed, 11));
    return _mm512_cmp_pd_mask(draw, _mm512_mul_pd(fraction, _mm512_set1_pd(0x1p53)),
                              _CMP_LT_OQ);
}
/* The definition for 16 lanes; a function of its own, so that the compiler keeps the branch
   to it (if-converted, the float64 lanes cost every vector their time). */
static __attribute__((noinline)) __mmask16 lq_draw16(__m512 t, __m512 floor,
                                                     __m512i premixed0, __m512i premixed1)
{
    return (__mmask16)(lq_draw8(_mm512_castps512_ps256(t), _mm512_castps512_ps256(floor),
                                premixed0) |
                       (unsigned)lq_draw8(_mm512_extractf32x8_ps(t, 1),
                                          _mm512_extractf32x8_ps(floor, 1), premixed1)
                           << 8);
}
/*
 * Where |t| >= 1/2 (or t = 0), frac = t - floor is a float32 multiple of 2**-24, exact in
 * float32 and the same as in float64; then U < frac * 2**53 = F * 2**29 (F = frac * 2**24, an
 * integer) is (U >> 29) < F: the top 24 bits of the output, compared in float32, 16 lanes at
 * once. A vector with smaller nonzero |t| takes the float64 definition for those lanes.
 */
LQ_VECTOR_INLINE __m512 lq_stochastic16(__m512 t, lq_draws *s)
{
    const __m512 floor = _mm512_roundscale_ps(t, LQ_ROUND_DOWN);
    const __m512i premixed0 = lq_premix8(s->z[0]), premixed1 = lq_premix8(s->z[1]);
    /* the high 32 bits of each 64-bit lane of premixed0, then of premixed1: in order */
    const __m512i high = _mm512_permutex2var_epi32(
        premixed0, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31),
        premixed1);
    const __m512 top = _mm512_cvtepi32_ps(_mm512_srli_epi32(high, 8));
    const __m512 fraction24 = _mm512_mul_ps(_mm512_sub_ps(t, floor), _mm512_set1_ps(0x1p24f));
    __mmask16 up = _mm512_cmp_ps_mask(top, fraction24, _CMP_LT_OQ);
    const __mmask16 fine =
        _mm512_cmp_ps_mask(_mm512_abs_ps(t), _mm512_set1_ps(0.5f), _CMP_LT_OQ) &
        _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    if (__builtin_expect(fine != 0, 0))
        up = (__mmask16)((up & ~fine) | (lq_draw16(t, floor, premixed0, premixed1) & fine));
    s->z[0] = _mm512_add_epi64(s->z[0], s->advance);
    s->z[1] = _mm512_add_epi64(s->z[1], s->advance);
    return _mm512_mask_add_ps(floor, up, floor, _mm512_set1_ps(1.0f));
}
/* One vector of 16 quantized int32 codes of x / scale, zero point added, in the rounding mode
   whose conversion is CODES (draws: its stochastic state, or NULL). */
#define LQ_QUANTIZE16_ROUNDED(x, scale, lo, hi, zero_point, nan, CODES, draws)                \
    _mm512_add_epi32(                                                                         \
        CODES(lq_saturated16(_mm512_div_ps(x, scale), lo, hi, nan), draws), zero_point)
/* Streamed, the aligned whole lines of the run; else its first whole lines, stored. */
#define LQ_QUANTIZE_SETUP                                                                     \
    const __m512 vs = _mm512_set1_ps(scale), vlo = _mm512_set1_ps(lo);                        \
    const __m512 vhi = _mm512_set1_ps(hi);                                                    \
    const __m512i vz = _mm512_set1_epi32(zero_point);                                         \
    __mmask16 nan = 0;                                                                        \
    lq_draws draws;                                                                           \
    ptrdiff_t i;                                                                              \
    if (stream)                                                                               \
        lq_line_span(out, n, sizeof(*out), begin, end);                                       \
    else                                                                                      \
        *begin = 0, *end = n - n % (64 / (ptrdiff_t)sizeof(*out));                            \
    lq_draws_init(&draws, seed, index + *begin * index_step, index_step)
#define LQ_QUANTIZE16_AT(p, CODES)                                                            \
    LQ_QUANTIZE16_ROUNDED(_mm512_loadu_ps(p), vs, vlo, vhi, vz, &nan, CODES, &draws)
#define LQ_DEFINE_QUANTIZE8(CODE, NAME, SUFFIX, CODES)                                        \
    static int NAME##SUFFIX(const float *x, ptrdiff_t n, float scale, float lo, float hi,     \
                            int zero_point, CODE *out, uint64_t seed, int64_t index,          \
                            int64_t index_step, int stream, ptrdiff_t *begin,                 \
                            ptrdiff_t *end)                                                   \
    {                                                                                         \
        LQ_QUANTIZE_SETUP;                                                                    \
        for (i = *begin; i < *end; i += 64) {                                                 \
            __m512i line = _mm512_castsi128_si512(                                            \
                _mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i, CODES)));                        \
            line = _mm512_inserti32x4(                                                        \
                line, _mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i + 16, CODES)), 1);          \
            line = _mm512_inserti32x4(                                                        \
                line, _mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i + 32, CODES)), 2);          \
            line = _mm512_inserti32x4(                                                        \
                line, _mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i + 48, CODES)), 3);          \
            LQ_STORE_LINE(out + i, line, stream);                                             \
        }                                                                                     \
        return nan != 0;                                                                      \
    }
#define LQ_DEFINE_QUANTIZE16(CODE, NAME, SUFFIX, CODES)                                       \
    static int NAME##SUFFIX(const float *x, ptrdiff_t n, float scale, float lo, float hi,     \
                            int zero_point, CODE *out, uint64_t seed, int64_t index,          \
                            int64_t index_step, int stream, ptrdiff_t *begin,                 \
                            ptrdiff_t *end)                                                   \
    {                                                                                         \
        LQ_QUANTIZE_SETUP;                                                                    \
        for (i = *begin; i < *end; i += 32) {                                                 \
            __m512i line = _mm512_castsi256_si512(                                            \
                _mm512_cvtepi32_epi16(LQ_QUANTIZE16_AT(x + i, CODES)));                       \
            line = _mm512_inserti64x4(                                                        \
                line, _mm512_cvtepi32_epi16(LQ_QUANTIZE16_AT(x + i + 16, CODES)), 1);         \
            LQ_STORE_LINE(out + i, line, stream);                                             \
        }                                                                                     \
        return nan != 0;                                                                      \
    }
/* One per code type, each dispatching to its kernels of every rounding mode. */
#define LQ_DEFINE_QUANTIZE_LINES(CODE, NAME, DEFINE)                                         \
    LQ_FOR_ROUNDING(DEFINE, CODE, NAME)                                                       \
    static inline int NAME(const float *x, ptrdiff_t n, float scale, float lo, float hi,      \
                           int zero_point, CODE *out, const lq_rounding *rounding,            \
                           int64_t index, int64_t index_step, int stream, ptrdiff_t *begin,   \
                           ptrdiff_t *end)                                                    \
    {                                                                                         \
        LQ_BY_ROUNDING(rounding->mode, NAME, x, n, scale, lo, hi, zero_point, out,            \
                       rounding->seed, index, index_step, stream, begin, end)                 \
    }
/* WIDEN loads 16 codes into 16 int32. */
#define LQ_DEFINE_DEQUANTIZE(CODE, NAME, WIDEN)                                               \
    static inline int NAME(const CODE *q, ptrdiff_t n, float scale, int zero_point,           \
                            float *out, ptrdiff_t *begin, ptrdiff_t *end)                     \
    {                                                                                         \
        const __m512 vs = _mm512_set1_ps(scale);                                              \
        const __m512i vz = _mm512_set1_epi32(zero_point);                                     \
        ptrdiff_t i;                                                                          \
        lq_line_span(out, n, sizeof(*out), begin, end);                                       \
        for (i = *begin; i < *end; i += 16) {                                                 \
            __m512i shifted = _mm512_sub_epi32(WIDEN(q + i), vz);                             \
            _mm512_stream_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(shifted), vs));        \
        }                                                                                     \
        return 0;                                                                             \
    }
#define LQ_WIDEN_U8(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define LQ_WIDEN_I8(p) _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define LQ_WIDEN_U16(p) _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p)))
#define LQ_WIDEN_I16(p) _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(p)))

static inline __mmask16 lq_first(ptrdiff_t n) { return (__mmask16)((1u << n) - 1u); }
/* Streaming needs every block's codes to start on a 16-code boundary of an aligned run. */
static inline int lq_can_stream(const void *out, ptrdiff_t block, ptrdiff_t itemsize)
{
    return block % 16 == 0 && (uintptr_t)out % (uintptr_t)(16 * itemsize) == 0;
}
#define LQ_STORE_U8(p, v) _mm_storeu_si128((__m128i *)(p), _mm512_cvtepi32_epi8(v))
#define LQ_STREAM_U8(p, v) _mm_stream_si128((__m128i *)(p), _mm512_cvtepi32_epi8(v))
#define LQ_MASK_STORE_U8(p, m, v) _mm512_mask_cvtepi32_storeu_epi8((void *)(p), m, v)
#define LQ_STORE_U16(p, v) _mm256_storeu_si256((__m256i *)(p), _mm512_cvtepi32_epi16(v))
#define LQ_STREAM_U16(p, v) _mm256_stream_si256((__m256i *)(p), _mm512_cvtepi32_epi16(v))
#define LQ_MASK_STORE_U16(p, m, v) _mm512_mask_cvtepi32_storeu_epi16((void *)(p), m, v)
/*
 * Per-axis along contiguous runs (float32): value i of each run has scale[i] and the zero point
 * zero_point[i * zero_point_step] (step 0: one for the run). The fast form's bounds are
 * computed lane-wise in int32, exact as lq_broadcast's; callers check that every zero point
 * keeps the fast form. Quantize returns nonzero if a value was NaN (the caller redoes the runs).
 */
/* Bytes of input read ahead, non-temporally, where a call has one run: the parameters stay in
   the L1 cache. Several runs at once leave it to the hardware prefetcher, which then does
   better (bench/NOTES.md). */
#define LQ_EACH_PREFETCH 1024
/* The fast form's bounds qmin - z and qmax - z of zero points z, lane-wise (exact in int32). */
LQ_VECTOR_INLINE void lq_bounds16(__m512i z, int qmin, int qmax, __m512 *lo, __m512 *hi)
{
    *lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_set1_epi32(qmin), z));
    *hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_set1_epi32(qmax), z));
}
/* A 64-byte line of codes from 4 (8-bit) or 2 (16-bit) vectors already within the code range:
   the packs work within 128-bit lanes, the permute puts the pieces in order. */
LQ_VECTOR_INLINE __m512i lq_line8(__m512i packed)
{
    return _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), packed);
}
LQ_VECTOR_INLINE __m512i lq_line16(__m512i packed)
{
    return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), packed);
}
#define LQ_LINE_U8(v)                                                                         \
    lq_line8(_mm512_packus_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3])))
#define LQ_LINE_I8(v)                                                                         \
    lq_line8(_mm512_packs_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3])))
#define LQ_LINE_U16(v) lq_line16(_mm512_packus_epi32(v[0], v[1]))
#define LQ_LINE_I16(v) lq_line16(_mm512_packs_epi32(v[0], v[1]))
#define LQ_STORE_LINE(p, line, stream)                                                        \
    do {                                                                                      \
        if (stream)                                                                           \
            _mm512_stream_si512((void *)(p), line);                                           \
        else                                                                                  \
            _mm512_storeu_si512((void *)(p), line);                                           \
    } while (0)
/*
 * `rows` runs of n values, run r at x + r * x_row_step and out + r * out_row_step, all with
 * the same parameters: each vector of parameters is loaded once for all the runs. The codes go
 * out a whole 64-byte line at a time (non-temporally with `stream` where every run's lines are
 * aligned): lines of 16-code pieces from several runs at once would leave the write-combining
 * buffers partly filled. The rest of each run, after its last whole line, 16 codes at a time.
 */
#define LQ_DEFINE_QUANTIZE_EACH(CODE, S, LINE, MASK_STORE, SUFFIX, CODES)                    \
    LQ_ROW_KERNEL int lq_quantize_each_##S##SUFFIX(                                           \
        const float *x, ptrdiff_t x_row_step, ptrdiff_t rows, ptrdiff_t n, const float *scale, \
        const int32_t *zero_point, ptrdiff_t zero_point_step, int qmin, int qmax, CODE *out,  \
        ptrdiff_t out_row_step, int stream)                                                   \
    {                                                                                         \
        enum { PER_LINE = 64 / (16 * (int)sizeof(CODE)) };                                    \
        __m512i z[PER_LINE], v[PER_LINE];                                                     \
        __m512 s[PER_LINE], lo[PER_LINE], hi[PER_LINE];                                       \
        __mmask16 nan = 0, m;                                                                 \
        ptrdiff_t i, r;                                                                       \
        int k;                                                                                \
        stream = stream && (uintptr_t)out % 64 == 0 &&                                        \
                 (rows == 1 || out_row_step * (ptrdiff_t)sizeof(CODE) % 64 == 0);             \
        for (k = 0; k < PER_LINE; k++) {                                                      \
            z[k] = _mm512_set1_epi32(zero_point_step || n <= 0 ? 0 : zero_point[0]);         \
            lq_bounds16(z[k], qmin, qmax, &lo[k], &hi[k]);                                    \
        }                                                                                     \
        for (i = 0; i + 16 * PER_LINE <= n; i += 16 * PER_LINE) {                             \
            for (k = 0; k < PER_LINE; k++) {                                                  \
                if (zero_point_step) {                                                        \
                    z[k] = _mm512_loadu_si512((const void *)(zero_point + i + 16 * k));       \
                    lq_bounds16(z[k], qmin, qmax, &lo[k], &hi[k]);                            \
                }                                                                             \
                s[k] = _mm512_loadu_ps(scale + i + 16 * k);                                   \
            }                                                                                 \
            for (r = 0; r < rows; r++) {                                                      \
                const float *p = x + r * x_row_step + i;                                      \
                for (k = 0; k < PER_LINE; k++) {                                              \
                    if (rows == 1)                                                            \
                        _mm_prefetch((const char *)(p + 16 * k) + LQ_EACH_PREFETCH,           \
                                     _MM_HINT_NTA);                                           \
                    v[k] = LQ_QUANTIZE16_ROUNDED(_mm512_loadu_ps(p + 16 * k), s[k], lo[k],    \
                                                 hi[k], z[k], &nan, CODES, NULL);             \
                }                                                                             \
                LQ_STORE_LINE(out + r * out_row_step + i, LINE(v), stream);                   \
            }                                                                                 \
        }                                                                                     \
        for (; i < n; i += 16) { /* masked-off lanes divide 0 by 1: no NaN, nothing stored */ \
            m = n - i >= 16 ? (__mmask16)0xFFFF : lq_first(n - i);                            \
            if (zero_point_step) {                                                            \
                z[0] = _mm512_maskz_loadu_epi32(m, zero_point + i);                           \
                lq_bounds16(z[0], qmin, qmax, &lo[0], &hi[0]);                                \
            }                                                                                 \
            s[0] = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, scale + i);                  \
            for (r = 0; r < rows; r++) {                                                      \
                v[0] = LQ_QUANTIZE16_ROUNDED(_mm512_maskz_loadu_ps(m, x + r * x_row_step + i), \
                                             s[0], lo[0], hi[0], z[0], &nan, CODES, NULL);    \
                MASK_STORE(out + r * out_row_step + i, m, v[0]);                              \
            }                                                                                 \
        }                                                                                     \
        return nan != 0;                                                                      \
    }
/* Dequantize, fast form ((int32)q - zp fits): WIDEN loads 16 codes, MASK_WIDEN the first m;
   returns 0. */
#define LQ_DEFINE_DEQUANTIZE_EACH(CODE, NAME, WIDEN, MASK_WIDEN)                              \
    LQ_ROW_KERNEL int NAME(const CODE *q, ptrdiff_t n, const float *scale,                    \
                            const int32_t *zero_point, ptrdiff_t zero_point_step, float *out, \
                            int stream)                                                       \
    {                                                                                         \
        __m512i z = _mm512_set1_epi32(zero_point_step || n <= 0 ? 0 : zero_point[0]);        \
        __m512 v;                                                                             \
        __mmask16 m;                                                                          \
        ptrdiff_t i;                                                                          \
        stream = stream && (uintptr_t)out % 64 == 0;                                          \
        for (i = 0; i + 16 <= n; i += 16) {                                                   \
            _mm_prefetch((const char *)(q + i) + LQ_EACH_PREFETCH, _MM_HINT_NTA);             \
            if (zero_point_step)                                                              \
                z = _mm512_loadu_si512((const void *)(zero_point + i));                       \
            v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(WIDEN(q + i), z)),          \
                              _mm512_loadu_ps(scale + i));                                    \
            if (stream)                                                                       \
                _mm512_stream_ps(out + i, v);                                                 \
            else                                                                              \
                _mm512_storeu_ps(out + i, v);                                                 \
        }                                                                                     \
        if (i < n) {                                                                          \
            m = lq_first(n - i);                                                              \
            if (zero_point_step)                                                              \
                z = _mm512_maskz_loadu_epi32(m, zero_point + i);                              \
            v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(MASK_WIDEN(m, q + i), z)),  \
                              _mm512_maskz_loadu_ps(m, scale + i));                           \
            _mm512_mask_storeu_ps(out + i, m, v);                                             \
        }                                                                                     \
        return 0;                                                                             \
    }
#define LQ_MASK_WIDEN_U8(m, p) _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p))
#define LQ_MASK_WIDEN_I8(m, p) _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p))
#define LQ_MASK_WIDEN_U16(m, p) _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p))
#define LQ_MASK_WIDEN_I16(m, p) _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m, p))
/* One per code type and deterministic rounding mode: lq_quantize_each_u8_half_even, ... */
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_EACH, uint8_t, u8, LQ_LINE_U8, LQ_MASK_STORE_U8)
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_EACH, int8_t, i8, LQ_LINE_I8, LQ_MASK_STORE_U8)
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_EACH, uint16_t, u16, LQ_LINE_U16, LQ_MASK_STORE_U16)
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_EACH, int16_t, i16, LQ_LINE_I16, LQ_MASK_STORE_U16)
LQ_DEFINE_DEQUANTIZE_EACH(uint8_t, lq_dequantize_each_u8, LQ_WIDEN_U8, LQ_MASK_WIDEN_U8)
LQ_DEFINE_DEQUANTIZE_EACH(int8_t, lq_dequantize_each_i8, LQ_WIDEN_I8, LQ_MASK_WIDEN_I8)
LQ_DEFINE_DEQUANTIZE_EACH(uint16_t, lq_dequantize_each_u16, LQ_WIDEN_U16, LQ_MASK_WIDEN_U16)
LQ_DEFINE_DEQUANTIZE_EACH(int16_t, lq_dequantize_each_i16, LQ_WIDEN_I16, LQ_MASK_WIDEN_I16)
LQ_DEFINE_QUANTIZE_LINES(uint8_t, lq_quantize_lines_u8, LQ_DEFINE_QUANTIZE8)
LQ_DEFINE_QUANTIZE_LINES(int8_t, lq_quantize_lines_i8, LQ_DEFINE_QUANTIZE8)
LQ_DEFINE_QUANTIZE_LINES(uint16_t, lq_quantize_lines_u16, LQ_DEFINE_QUANTIZE16)
LQ_DEFINE_QUANTIZE_LINES(int16_t, lq_quantize_lines_i16, LQ_DEFINE_QUANTIZE16)
LQ_DEFINE_DEQUANTIZE(uint8_t, lq_stream_dequantize_u8, LQ_WIDEN_U8)
LQ_DEFINE_DEQUANTIZE(int8_t, lq_stream_dequantize_i8, LQ_WIDEN_I8)
LQ_DEFINE_DEQUANTIZE(uint16_t, lq_stream_dequantize_u16, LQ_WIDEN_U16)
LQ_DEFINE_DEQUANTIZE(int16_t, lq_stream_dequantize_i16, LQ_WIDEN_I16)

#endif /* LINQUANT_LQ_AVX512_TENSOR_H */
