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
#define LQ_QUANTIZE_SETUP                                                                     \
    const __m512 vs = _mm512_set1_ps(scale), vlo = _mm512_set1_ps(lo);                        \
    const __m512 vhi = _mm512_set1_ps(hi);                                                    \
    const __m512i vz = _mm512_set1_epi32(zero_point);                                         \
    __mmask16 nan = 0;                                                                        \
    ptrdiff_t i;                                                                              \
    lq_line_span(out, n, sizeof(*out), begin, end)
#define LQ_QUANTIZE16_AT(p) lq_quantize16(_mm512_loadu_ps(p), vs, vlo, vhi, vz, &nan)
#define LQ_DEFINE_QUANTIZE8(CODE, NAME)                                                       \
    static inline int NAME(const float *x, ptrdiff_t n, float scale, float lo, float hi,      \
                           int zero_point, CODE *out, ptrdiff_t *begin, ptrdiff_t *end)       \
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
                           int zero_point, CODE *out, ptrdiff_t *begin, ptrdiff_t *end)       \
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
 * Per-axis along a contiguous run (float32): value i has scale[i] and the zero point
 * zero_point[i * zero_point_step] (step 0: one for the run). The fast form's bounds are
 * computed lane-wise in int32, exact as lq_broadcast's; callers check that every zero point
 * keeps the fast form. Quantize returns nonzero if a value was NaN (the caller redoes the run).
 */
/* Bytes of input read ahead, non-temporally: the parameters stay in the L1 cache. */
#define LQ_EACH_PREFETCH 1024
/* 16 codes of values x with scales s and zero points z: the fast form's bounds lane-wise. */
LQ_VECTOR_INLINE __m512i lq_quantize_each16(__m512 x, __m512 s, __m512i z, int qmin, int qmax,
                                           __mmask16 *nan)
{
    __m512 lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_set1_epi32(qmin), z));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_set1_epi32(qmax), z));
    return lq_quantize16(x, s, lo, hi, z, nan);
}
/* STREAM: 16 codes with a non-temporal store, where the run's codes start 16-code aligned. */
#define LQ_DEFINE_QUANTIZE_EACH(CODE, NAME, STORE, STREAM, MASK_STORE)                        \
    LQ_ROW_KERNEL int NAME(const float *x, ptrdiff_t n, const float *scale,                   \
                           const int32_t *zero_point, ptrdiff_t zero_point_step, int qmin,    \
                           int qmax, CODE *out, int stream)                                   \
    {                                                                                         \
        __m512i z = _mm512_set1_epi32(zero_point_step || n <= 0 ? 0 : zero_point[0]), q;     \
        __mmask16 nan = 0, m;                                                                 \
        ptrdiff_t i;                                                                          \
        stream = stream && lq_can_stream(out, 16, sizeof(CODE));                              \
        for (i = 0; i + 16 <= n; i += 16) {                                                   \
            _mm_prefetch((const char *)(x + i) + LQ_EACH_PREFETCH, _MM_HINT_NTA);             \
            if (zero_point_step)                                                              \
                z = _mm512_loadu_si512((const void *)(zero_point + i));                       \
            q = lq_quantize_each16(_mm512_loadu_ps(x + i), _mm512_loadu_ps(scale + i), z,     \
                                   qmin, qmax, &nan);                                         \
            if (stream)                                                                       \
                STREAM(out + i, q);                                                           \
            else                                                                              \
                STORE(out + i, q);                                                            \
        }                                                                                     \
        if (i < n) { /* masked-off lanes divide 0 by 1: no NaN, nothing stored */             \
            m = lq_first(n - i);                                                              \
            if (zero_point_step)                                                              \
                z = _mm512_maskz_loadu_epi32(m, zero_point + i);                              \
            q = lq_quantize_each16(_mm512_maskz_loadu_ps(m, x + i),                           \
                                   _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, scale + i),  \
                                   z, qmin, qmax, &nan);                                      \
            MASK_STORE(out + i, m, q);                                                        \
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
LQ_DEFINE_QUANTIZE_EACH(uint8_t, lq_quantize_each_u8, LQ_STORE_U8, LQ_STREAM_U8,
                        LQ_MASK_STORE_U8)
LQ_DEFINE_QUANTIZE_EACH(int8_t, lq_quantize_each_i8, LQ_STORE_U8, LQ_STREAM_U8,
                        LQ_MASK_STORE_U8)
LQ_DEFINE_QUANTIZE_EACH(uint16_t, lq_quantize_each_u16, LQ_STORE_U16, LQ_STREAM_U16,
                        LQ_MASK_STORE_U16)
LQ_DEFINE_QUANTIZE_EACH(int16_t, lq_quantize_each_i16, LQ_STORE_U16, LQ_STREAM_U16,
                        LQ_MASK_STORE_U16)
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
