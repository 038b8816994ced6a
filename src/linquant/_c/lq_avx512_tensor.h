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
 *   first and rounding after is exact; vcvtps2dq rounds half to even (the default mode, as
 *   rint does); max(t, lo) returns lo for a NaN t (the x86 rule: the second operand), so a
 *   NaN leaves only the returned flag, and the caller redoes a row that had one;
 * - dequantize, fast form: (float)((int32)q - zp) * scale.
 * Each function does the part of a contiguous run whose output is 64-byte aligned and whole
 * lines, sets [*begin, *end) to it, and leaves the rest to the Cython loops.
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
/* One vector of 16 quantized int32 codes, zero point added. */
LQ_VECTOR_INLINE __m512i lq_quantize16(__m512 x, __m512 scale, __m512 lo, __m512 hi,
                                      __m512i zero_point, __mmask16 *nan)
{
    __m512 t = _mm512_div_ps(x, scale);
    *nan |= _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
    t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
    return _mm512_add_epi32(_mm512_cvtps_epi32(t), zero_point);
}
/*
 * The rounding modes other than half to even (SPEC §2.1), 16 saturated quotients at a time:
 * lq_adjusted's thresholds and lq_stochastic's draws in vector form, to the bit. A call's
 * vectors must come in order: the draws' state, SplitMix64's seed + (i + 1) * gamma of
 * lanes 0-7 and 8-15, advances by 16 elements each time.
 */
typedef struct {
    int mode;
    __m512 up[2], down[2]; /* [0] for t > 0, [1] otherwise */
    __m512i z[2], advance;
} lq_rounding16;
LQ_VECTOR_INLINE void lq_rounding16_init(lq_rounding16 *s, const lq_rounding *r, int64_t index,
                                         int64_t index_step)
{
    const uint64_t gamma_step = (uint64_t)index_step * LQ_GOLDEN_GAMMA;
    const __m512i first = _mm512_set1_epi64(
        (long long)(r->seed + ((uint64_t)index + 1u) * LQ_GOLDEN_GAMMA));
    int k;
    s->mode = r->mode;
    for (k = 0; k < 2; k++) {
        s->up[k] = _mm512_set1_ps(r->up_f32[k]);
        s->down[k] = _mm512_set1_ps(r->down_f32[k]);
    }
    s->z[0] = _mm512_add_epi64(first, _mm512_mullo_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7),
                                                         _mm512_set1_epi64((long long)gamma_step)));
    s->z[1] = _mm512_add_epi64(s->z[0], _mm512_set1_epi64((long long)(8u * gamma_step)));
    s->advance = _mm512_set1_epi64((long long)(16u * gamma_step));
}
LQ_VECTOR_INLINE __m512i lq_mix8(__m512i z)
{
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}
/* Whether each of 8 lanes rounds up: U < (t - floor) * 2**53 in float64 (both exact). */
LQ_VECTOR_INLINE __mmask8 lq_draw8(__m256 t, __m256 floor, __m512i z)
{
    __m512d fraction = _mm512_sub_pd(_mm512_cvtps_pd(t), _mm512_cvtps_pd(floor));
    __m512d draw = _mm512_cvtepu64_pd(_mm512_srli_epi64(lq_mix8(z), 11));
    return _mm512_cmp_pd_mask(draw, _mm512_mul_pd(fraction, _mm512_set1_pd(0x1p53)),
                              _CMP_LT_OQ);
}
LQ_VECTOR_INLINE __m512 lq_round16(__m512 t, lq_rounding16 *s)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    if (s->mode == LQ_HALF_EVEN) /* the conversion after rounds */
        return t;
    if (s->mode == LQ_STOCHASTIC) {
        __m512 floor = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __mmask16 up = (__mmask16)(
            lq_draw8(_mm512_castps512_ps256(t), _mm512_castps512_ps256(floor), s->z[0]) |
            (unsigned)lq_draw8(_mm512_extractf32x8_ps(t, 1), _mm512_extractf32x8_ps(floor, 1),
                               s->z[1]) << 8);
        s->z[0] = _mm512_add_epi64(s->z[0], s->advance);
        s->z[1] = _mm512_add_epi64(s->z[1], s->advance);
        return _mm512_mask_add_ps(floor, up, floor, one);
    } else {
        __m512 nearest = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 d = _mm512_sub_ps(t, nearest);
        __mmask16 other = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_NGT_UQ);
        __m512 up = _mm512_mask_blend_ps(other, s->up[0], s->up[1]);
        __m512 down = _mm512_mask_blend_ps(other, s->down[0], s->down[1]);
        nearest = _mm512_mask_add_ps(nearest, _mm512_cmp_ps_mask(d, up, _CMP_GT_OQ), nearest, one);
        return _mm512_mask_sub_ps(nearest, _mm512_cmp_ps_mask(d, down, _CMP_LT_OQ), nearest, one);
    }
}
/* lq_quantize16 in any rounding mode. */
LQ_VECTOR_INLINE __m512i lq_quantize16_rounded(__m512 x, __m512 scale, __m512 lo, __m512 hi,
                                              __m512i zero_point, __mmask16 *nan,
                                              lq_rounding16 *rounding)
{
    __m512 t = _mm512_div_ps(x, scale);
    *nan |= _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
    t = lq_round16(_mm512_min_ps(_mm512_max_ps(t, lo), hi), rounding);
    return _mm512_add_epi32(_mm512_cvtps_epi32(t), zero_point);
}
#define LQ_QUANTIZE_SETUP                                                                     \
    const __m512 vs = _mm512_set1_ps(scale), vlo = _mm512_set1_ps(lo);                        \
    const __m512 vhi = _mm512_set1_ps(hi);                                                    \
    const __m512i vz = _mm512_set1_epi32(zero_point);                                         \
    __mmask16 nan = 0;                                                                        \
    lq_rounding16 vr;                                                                         \
    ptrdiff_t i;                                                                              \
    lq_line_span(out, n, sizeof(*out), begin, end);                                           \
    lq_rounding16_init(&vr, rounding, index + *begin * index_step, index_step)
#define LQ_QUANTIZE16_AT(p)                                                                   \
    lq_quantize16_rounded(_mm512_loadu_ps(p), vs, vlo, vhi, vz, &nan, &vr)
#define LQ_DEFINE_QUANTIZE8(CODE, NAME)                                                       \
    static inline int NAME(const float *x, ptrdiff_t n, float scale, float lo, float hi,      \
                           int zero_point, CODE *out, const lq_rounding *rounding,            \
                           int64_t index, int64_t index_step, ptrdiff_t *begin,               \
                           ptrdiff_t *end)                                                    \
    {                                                                                         \
        LQ_QUANTIZE_SETUP;                                                                    \
        for (i = *begin; i < *end; i += 64) {                                                 \
            __m512i line =                                                                    \
                _mm512_castsi128_si512(_mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i)));        \
            line = _mm512_inserti32x4(                                                        \
                line, _mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i + 16)), 1);                 \
            line = _mm512_inserti32x4(                                                        \
                line, _mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i + 32)), 2);                 \
            line = _mm512_inserti32x4(                                                        \
                line, _mm512_cvtepi32_epi8(LQ_QUANTIZE16_AT(x + i + 48)), 3);                 \
            _mm512_stream_si512((void *)(out + i), line);                                     \
        }                                                                                     \
        return nan != 0;                                                                      \
    }
#define LQ_DEFINE_QUANTIZE16(CODE, NAME)                                                      \
    static inline int NAME(const float *x, ptrdiff_t n, float scale, float lo, float hi,      \
                           int zero_point, CODE *out, const lq_rounding *rounding,            \
                           int64_t index, int64_t index_step, ptrdiff_t *begin,               \
                           ptrdiff_t *end)                                                    \
    {                                                                                         \
        LQ_QUANTIZE_SETUP;                                                                    \
        for (i = *begin; i < *end; i += 32) {                                                 \
            __m512i line =                                                                    \
                _mm512_castsi256_si512(_mm512_cvtepi32_epi16(LQ_QUANTIZE16_AT(x + i)));       \
            line = _mm512_inserti64x4(                                                        \
                line, _mm512_cvtepi32_epi16(LQ_QUANTIZE16_AT(x + i + 16)), 1);                \
            _mm512_stream_si512((void *)(out + i), line);                                     \
        }                                                                                     \
        return nan != 0;                                                                      \
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
#define LQ_DEFINE_QUANTIZE_EACH(CODE, NAME, LINE, MASK_STORE)                                 \
    LQ_ROW_KERNEL int NAME(const float *x, ptrdiff_t x_row_step, ptrdiff_t rows, ptrdiff_t n, \
                           const float *scale, const int32_t *zero_point,                     \
                           ptrdiff_t zero_point_step, int qmin, int qmax, CODE *out,          \
                           ptrdiff_t out_row_step, int stream)                                \
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
                    v[k] = lq_quantize16(_mm512_loadu_ps(p + 16 * k), s[k], lo[k], hi[k],     \
                                         z[k], &nan);                                         \
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
                v[0] = lq_quantize16(_mm512_maskz_loadu_ps(m, x + r * x_row_step + i), s[0],  \
                                     lo[0], hi[0], z[0], &nan);                               \
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
LQ_DEFINE_QUANTIZE_EACH(uint8_t, lq_quantize_each_u8, LQ_LINE_U8, LQ_MASK_STORE_U8)
LQ_DEFINE_QUANTIZE_EACH(int8_t, lq_quantize_each_i8, LQ_LINE_I8, LQ_MASK_STORE_U8)
LQ_DEFINE_QUANTIZE_EACH(uint16_t, lq_quantize_each_u16, LQ_LINE_U16, LQ_MASK_STORE_U16)
LQ_DEFINE_QUANTIZE_EACH(int16_t, lq_quantize_each_i16, LQ_LINE_I16, LQ_MASK_STORE_U16)
LQ_DEFINE_DEQUANTIZE_EACH(uint8_t, lq_dequantize_each_u8, LQ_WIDEN_U8, LQ_MASK_WIDEN_U8)
LQ_DEFINE_DEQUANTIZE_EACH(int8_t, lq_dequantize_each_i8, LQ_WIDEN_I8, LQ_MASK_WIDEN_I8)
LQ_DEFINE_DEQUANTIZE_EACH(uint16_t, lq_dequantize_each_u16, LQ_WIDEN_U16, LQ_MASK_WIDEN_U16)
LQ_DEFINE_DEQUANTIZE_EACH(int16_t, lq_dequantize_each_i16, LQ_WIDEN_I16, LQ_MASK_WIDEN_I16)
LQ_DEFINE_QUANTIZE8(uint8_t, lq_stream_quantize_u8)
LQ_DEFINE_QUANTIZE8(int8_t, lq_stream_quantize_i8)
LQ_DEFINE_QUANTIZE16(uint16_t, lq_stream_quantize_u16)
LQ_DEFINE_QUANTIZE16(int16_t, lq_stream_quantize_i16)
LQ_DEFINE_DEQUANTIZE(uint8_t, lq_stream_dequantize_u8, LQ_WIDEN_U8)
LQ_DEFINE_DEQUANTIZE(int8_t, lq_stream_dequantize_i8, LQ_WIDEN_I8)
LQ_DEFINE_DEQUANTIZE(uint16_t, lq_stream_dequantize_u16, LQ_WIDEN_U16)
LQ_DEFINE_DEQUANTIZE(int16_t, lq_stream_dequantize_i16, LQ_WIDEN_I16)

#endif /* LINQUANT_LQ_AVX512_TENSOR_H */
