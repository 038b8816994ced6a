/*
 * GGUF blocks (SPEC §9): quantize and dequantize rows of 32-value blocks as ggml's reference
 * quantizer does (ggml-quants.c, quantize_row_q8_0_ref and its siblings), byte for byte.
 * This is not SPEC §2 arithmetic: each block's scale d is computed in float32 and stored as
 * float16 (round to nearest even); values are multiplied by id = 1/d (a reciprocal, not a
 * division), and rounded as each type says. Every product and sum is rounded on its own
 * (setup.py builds with -ffp-contract=off), as in the gguf package's NumPy quantizer.
 *
 * Blocks, type_size bytes each, little-endian: Q8_0 = d, 32 int8 codes; Q4_0 = d, 16 bytes;
 * Q4_1 = d, m, 16 bytes; Q5_0 = d, qh (uint32), 16 bytes; Q5_1 = d, m, qh, 16 bytes. In the
 * 16 bytes of 4- and 5-bit blocks, byte j holds element j in its low nibble and element
 * j + 16 in its high one; qh holds bit 4 of element j in its bit j.
 *
 * A block that ggml's reference leaves undefined (a float converted to an integer out of its
 * range, C11 6.3.1.4) is not written: one holding NaN or an infinity, one whose range
 * max - min overflows (Q4_1, Q5_1), or one whose scale's reciprocal overflows (|d| < 2^-128).
 */
#ifndef LINQUANT_LQ_GGUF_H
#define LINQUANT_LQ_GGUF_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LQ_GGUF_BLOCK 32

/* Inlined where called with a constant type, which folds its branches on the type away. */
#if defined(_MSC_VER) && !defined(__clang__)
#define LQ_GGUF_INLINE static __forceinline
#else
#define LQ_GGUF_INLINE static inline __attribute__((always_inline))
#endif

/* ggml's type numbers (enum ggml_type), which the gguf package and GGUF files use too. */
enum { LQ_GGUF_Q4_0 = 2, LQ_GGUF_Q4_1 = 3, LQ_GGUF_Q5_0 = 6, LQ_GGUF_Q5_1 = 7, LQ_GGUF_Q8_0 = 8 };

/* The bytes of one block of `type`; 0 for a type this header does not know. */
static inline ptrdiff_t lq_gguf_type_size(int type)
{
    switch (type) {
    case LQ_GGUF_Q4_0: return 18;
    case LQ_GGUF_Q4_1: return 20;
    case LQ_GGUF_Q5_0: return 22;
    case LQ_GGUF_Q5_1: return 24;
    case LQ_GGUF_Q8_0: return 34;
    default: return 0;
    }
}

/* The float16 nearest to f (ties to even), as bits: overflow gives an infinity, underflow a
   subnormal or a zero of f's sign. f is finite here (the blocks that hold no NaN or inf). */
static inline uint16_t lq_half_bits(float f)
{
    uint32_t x, magnitude, mantissa, rest, half_way;
    uint16_t sign, h;
    int shift;
    memcpy(&x, &f, sizeof x);
    sign = (uint16_t)((x >> 16) & 0x8000u);
    magnitude = x & 0x7fffffffu;
    if (magnitude >= 0x47800000u) /* 2^16 and up (and inf): beyond the largest half's ties */
        return (uint16_t)(sign | 0x7c00u);
    if (magnitude >= 0x38800000u) { /* 2^-14 and up: a normal half, 13 bits dropped */
        h = (uint16_t)((magnitude >> 13) - (112u << 10)); /* exponent rebiased 127 -> 15 */
        rest = magnitude & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
            h++; /* a carry into the exponent is right, up to 0x7c00 (inf) */
        return (uint16_t)(sign | h);
    }
    if (magnitude <= 0x33000000u) /* up to 2^-25, the tie between 0 and the least half: 0 */
        return sign;
    /* a subnormal half: the value in units of 2^-24, rounded; 2^10 units is the least normal */
    mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    shift = 126 - (int)(magnitude >> 23); /* from 14 to 24 */
    h = (uint16_t)(mantissa >> shift);
    rest = mantissa & ((1u << shift) - 1u);
    half_way = 1u << (shift - 1);
    if (rest > half_way || (rest == half_way && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

/* The value of the float16 with bits h (exact in float32). */
static inline float lq_half_value(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, bits;
    uint32_t mantissa = h & 0x3ffu;
    float value;
    if (exponent == 0) { /* zero or subnormal: mantissa units of 2^-24 */
        value = (float)mantissa * 0x1p-24f;
        return sign ? -value : value;
    }
    bits = exponent == 31 ? 0x7f800000u | (mantissa << 13) : ((exponent + 112u) << 23) | (mantissa << 13);
    bits |= sign;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static inline void lq_put_half(uint8_t *p, float f)
{
    uint16_t h = lq_half_bits(f);
    p[0] = (uint8_t)(h & 0xffu);
    p[1] = (uint8_t)(h >> 8);
}

static inline float lq_get_half(const uint8_t *p)
{
    return lq_half_value((uint16_t)(p[0] | (p[1] << 8)));
}

/* The largest |x[j]| of a block, and nonzero if one is NaN or infinite (such a value fails
   a <= FLT_MAX). Without NaN, the order of a max does not matter: vectorized as told. */
#if defined(_MSC_VER) && !defined(__clang__)
#define LQ_SIMD_AMAX
#define LQ_SIMD_RANGE
#else
#define LQ_SIMD_AMAX _Pragma("omp simd reduction(max:amax) reduction(|:bad)")
#define LQ_SIMD_RANGE _Pragma("omp simd reduction(min:lo) reduction(max:hi) reduction(|:bad)")
#endif

static inline int lq_gguf_amax(const float *x, float *amax_out)
{
    float amax = 0.0f;
    int bad = 0, j;
    LQ_SIMD_AMAX
    for (j = 0; j < LQ_GGUF_BLOCK; j++) {
        float a = fabsf(x[j]);
        bad |= !(a <= FLT_MAX);
        amax = a > amax ? a : amax;
    }
    *amax_out = amax;
    return bad;
}

/* The first x[j] equal to `value` (of equal zeros, the sign of the first). */
static inline float lq_gguf_first_equal(const float *x, float value)
{
    int j;
    for (j = 0; j < LQ_GGUF_BLOCK; j++)
        if (x[j] == value)
            return x[j];
    return value;
}

/* min and max of a block as ggml's loop finds them (the first of equal values, which only
   tells for zeros), and nonzero if one value is NaN or infinite. */
static inline int lq_gguf_range(const float *x, float *lo_out, float *hi_out)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    int bad = 0, j;
    LQ_SIMD_RANGE
    for (j = 0; j < LQ_GGUF_BLOCK; j++) {
        float v = x[j];
        bad |= !(fabsf(v) <= FLT_MAX);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *lo_out = lo == 0.0f ? lq_gguf_first_equal(x, lo) : lo;
    *hi_out = hi == 0.0f ? lq_gguf_first_equal(x, hi) : hi;
    return bad;
}

/* id = 1/d, or 0 for d = 0 (ggml's `d ? 1.0f/d : 0.0f`); nonzero if 1/d overflows. */
static inline int lq_gguf_reciprocal(float d, float *id)
{
    *id = d != 0.0f ? 1.0f / d : 0.0f;
    return !(fabsf(*id) <= FLT_MAX);
}

/* roundf: half away from zero (t - truncf(t) is exact). */
static inline float lq_gguf_roundf(float t)
{
    float whole = truncf(t);
    return fabsf(t - whole) >= 0.5f ? whole + copysignf(1.0f, t) : whole;
}

static inline int lq_gguf_q8_0_block(const float *x, uint8_t *y)
{
    float amax, d, id;
    int j;
    if (lq_gguf_amax(x, &amax))
        return 1;
    d = amax / 127.0f;
    if (lq_gguf_reciprocal(d, &id))
        return 1;
    lq_put_half(y, d);
    for (j = 0; j < LQ_GGUF_BLOCK; j++) /* |x * id| <= 127 (and a few ulps): an int8 */
        y[2 + j] = (uint8_t)(int8_t)(int)lq_gguf_roundf(x[j] * id);
    return 0;
}

/* Q4_0 and Q5_0: d = (the value of largest magnitude, the first of equals) / -2^(bits-1);
   code = min(2^bits - 1, trunc(x * id + 2^(bits-1) + 0.5)), from 0 as x * id >= -2^(bits-1). */
static inline int lq_gguf_symmetric_block(const float *x, int bits, uint8_t codes[LQ_GGUF_BLOCK],
                                     float *d_out)
{
    float amax, max = 0.0f, d, id, offset = (float)(1 << (bits - 1)) + 0.5f;
    int j, top = (1 << bits) - 1;
    if (lq_gguf_amax(x, &amax))
        return 1;
    for (j = 0; amax > 0.0f && j < LQ_GGUF_BLOCK; j++) /* all zeros: max stays +0.0 */
        if (fabsf(x[j]) == amax) {
            max = x[j];
            break;
        }
    d = max / -(float)(1 << (bits - 1));
    if (lq_gguf_reciprocal(d, &id))
        return 1;
    for (j = 0; j < LQ_GGUF_BLOCK; j++) {
        int code = (int)(x[j] * id + offset);
        codes[j] = (uint8_t)(code < top ? code : top);
    }
    *d_out = d;
    return 0;
}

/* Q4_1 and Q5_1: d = (max - min) / (2^bits - 1), m = min;
   code = min(2^bits - 1, trunc((x - min) * id + 0.5)). */
static inline int lq_gguf_affine_block(const float *x, int bits, uint8_t codes[LQ_GGUF_BLOCK],
                                  float *d_out, float *m_out)
{
    float lo, hi, d, id;
    int j, top = (1 << bits) - 1;
    if (lq_gguf_range(x, &lo, &hi) || !(hi - lo <= FLT_MAX))
        return 1;
    d = (hi - lo) / (float)top;
    if (lq_gguf_reciprocal(d, &id))
        return 1;
    for (j = 0; j < LQ_GGUF_BLOCK; j++) {
        int code = (int)((x[j] - lo) * id + 0.5f);
        codes[j] = (uint8_t)(code < top ? code : top);
    }
    *d_out = d;
    *m_out = lo;
    return 0;
}

/* The 16 bytes of 32 codes: code j in the low nibble of byte j, code j + 16 in the high. */
static inline void lq_gguf_put_nibbles(const uint8_t codes[LQ_GGUF_BLOCK], uint8_t *p)
{
    int j;
    for (j = 0; j < LQ_GGUF_BLOCK / 2; j++)
        p[j] = (uint8_t)((codes[j] & 15u) | ((codes[j + 16] & 15u) << 4));
}

/* qh: bit 4 of code j in bit j, little-endian. */
static inline void lq_gguf_put_qh(const uint8_t codes[LQ_GGUF_BLOCK], uint8_t *p)
{
    uint32_t qh = 0;
    int j;
    for (j = 0; j < LQ_GGUF_BLOCK; j++)
        qh |= (uint32_t)((codes[j] >> 4) & 1u) << j;
    p[0] = (uint8_t)qh;
    p[1] = (uint8_t)(qh >> 8);
    p[2] = (uint8_t)(qh >> 16);
    p[3] = (uint8_t)(qh >> 24);
}

static inline int lq_gguf_quantize_block(int type, const float *x, uint8_t *y)
{
    uint8_t codes[LQ_GGUF_BLOCK];
    float d, m;
    switch (type) {
    case LQ_GGUF_Q8_0: return lq_gguf_q8_0_block(x, y);
    case LQ_GGUF_Q4_0:
    case LQ_GGUF_Q5_0:
        if (lq_gguf_symmetric_block(x, type == LQ_GGUF_Q4_0 ? 4 : 5, codes, &d))
            return 1;
        lq_put_half(y, d);
        if (type == LQ_GGUF_Q5_0)
            lq_gguf_put_qh(codes, y + 2);
        lq_gguf_put_nibbles(codes, y + (type == LQ_GGUF_Q4_0 ? 2 : 6));
        return 0;
    default: /* Q4_1, Q5_1 */
        if (lq_gguf_affine_block(x, type == LQ_GGUF_Q4_1 ? 4 : 5, codes, &d, &m))
            return 1;
        lq_put_half(y, d);
        lq_put_half(y + 2, m);
        if (type == LQ_GGUF_Q5_1)
            lq_gguf_put_qh(codes, y + 4);
        lq_gguf_put_nibbles(codes, y + (type == LQ_GGUF_Q4_1 ? 4 : 8));
        return 0;
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>

/*
 * AVX-512: 16 blocks a group, the same arithmetic to the bit. Each block's range is reduced
 * in registers; the 16 scales and reciprocals are then computed as one vector (vdivps is
 * IEEE division, vcvtps2ph converts to float16 rounding to nearest even, as lq_half_bits),
 * and each block's codes are computed, packed and stored from its two vectors.
 */
#define LQ_GGUF_GROUP 16

static inline __m512 lq_gguf_abs(__m512 v)
{
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}

/* The first x[j] (j < 32) equal to `value` in v0 (x[0..15]) and v1 (x[16..31]). */
static inline float lq_gguf_first_of(const float *x, __m512 v0, __m512 v1, __m512 value)
{
    uint32_t equal = (uint32_t)_mm512_cmp_ps_mask(v0, value, _CMP_EQ_OQ) |
                     ((uint32_t)_mm512_cmp_ps_mask(v1, value, _CMP_EQ_OQ) << 16);
    return x[__builtin_ctz(equal)];
}

/* The codes of a block as int32 vectors (elements 0-15 and 16-31), given its reciprocal id
   and minimum lo (0 for symmetric types). */
static inline void lq_gguf_codes16(int type, __m512 v0, __m512 v1, __m512 id, __m512 lo,
                                   __m512i *c0, __m512i *c1)
{
    if (type == LQ_GGUF_Q8_0) { /* roundf: trunc, then 1 away from zero from a half up */
        __m512 t0 = _mm512_mul_ps(v0, id), t1 = _mm512_mul_ps(v1, id);
        __m512 w0 = _mm512_roundscale_ps(t0, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m512 w1 = _mm512_roundscale_ps(t1, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
        __mmask16 up0 = _mm512_cmp_ps_mask(lq_gguf_abs(_mm512_sub_ps(t0, w0)), half, _CMP_GE_OQ);
        __mmask16 up1 = _mm512_cmp_ps_mask(lq_gguf_abs(_mm512_sub_ps(t1, w1)), half, _CMP_GE_OQ);
        __m512 sign = _mm512_set1_ps(-0.0f);
        __m512 step0 = _mm512_or_ps(_mm512_and_ps(t0, sign), one);
        __m512 step1 = _mm512_or_ps(_mm512_and_ps(t1, sign), one);
        *c0 = _mm512_cvttps_epi32(_mm512_mask_add_ps(w0, up0, w0, step0));
        *c1 = _mm512_cvttps_epi32(_mm512_mask_add_ps(w1, up1, w1, step1));
        return;
    }
    {
        int affine = type == LQ_GGUF_Q4_1 || type == LQ_GGUF_Q5_1;
        int bits = type == LQ_GGUF_Q4_0 || type == LQ_GGUF_Q4_1 ? 4 : 5;
        __m512 offset = _mm512_set1_ps(affine ? 0.5f : (float)(1 << (bits - 1)) + 0.5f);
        __m512i top = _mm512_set1_epi32((1 << bits) - 1);
        if (affine) {
            v0 = _mm512_sub_ps(v0, lo);
            v1 = _mm512_sub_ps(v1, lo);
        }
        *c0 = _mm512_min_epi32(_mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(v0, id), offset)), top);
        *c1 = _mm512_min_epi32(_mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(v1, id), offset)), top);
    }
}

/* Quantize 16 blocks; 0, or 1 if one of them is undefined (nothing trusted: the caller redoes
   the group block by block). */
LQ_GGUF_INLINE int lq_gguf_group(int type, const float *x, uint8_t *out)
{
    float first[LQ_GGUF_GROUP], second[LQ_GGUF_GROUP], ids[LQ_GGUF_GROUP], los[LQ_GGUF_GROUP];
    uint16_t d_bits[LQ_GGUF_GROUP], m_bits[LQ_GGUF_GROUP];
    int affine = type == LQ_GGUF_Q4_1 || type == LQ_GGUF_Q5_1;
    int bits = type == LQ_GGUF_Q8_0 ? 8 : type == LQ_GGUF_Q4_0 || type == LQ_GGUF_Q4_1 ? 4 : 5;
    ptrdiff_t size = lq_gguf_type_size(type), start = size - (bits == 8 ? 32 : 16);
    __m512 limit = _mm512_set1_ps(FLT_MAX), d, id, f;
    __mmask16 nonzero;
    int b;
    for (b = 0; b < LQ_GGUF_GROUP; b++) {
        const float *p = x + b * LQ_GGUF_BLOCK;
        __m512 v0 = _mm512_loadu_ps(p), v1 = _mm512_loadu_ps(p + 16);
        __m512 a0 = lq_gguf_abs(v0), a1 = lq_gguf_abs(v1);
        if ((__mmask16)(_mm512_cmp_ps_mask(a0, limit, _CMP_LE_OQ) &
                        _mm512_cmp_ps_mask(a1, limit, _CMP_LE_OQ)) != 0xffff)
            return 1;
        if (affine) {
            float lo = _mm512_reduce_min_ps(_mm512_min_ps(v0, v1));
            float hi = _mm512_reduce_max_ps(_mm512_max_ps(v0, v1));
            first[b] = lo == 0.0f ? lq_gguf_first_of(p, v0, v1, _mm512_set1_ps(lo)) : lo;
            second[b] = hi == 0.0f ? lq_gguf_first_of(p, v0, v1, _mm512_set1_ps(hi)) : hi;
        } else {
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
            if (bits == 8)
                first[b] = amax;
            else /* the first value of largest magnitude; all zeros: +0.0 */
                first[b] = amax > 0.0f ? lq_gguf_first_of(p, a0, a1, _mm512_set1_ps(amax)) : 0.0f;
        }
    }
    f = _mm512_loadu_ps(first);
    if (affine) {
        __m512 span = _mm512_sub_ps(_mm512_loadu_ps(second), f);
        if (_mm512_cmp_ps_mask(span, limit, _CMP_LE_OQ) != 0xffff)
            return 1;
        d = _mm512_div_ps(span, _mm512_set1_ps((float)((1 << bits) - 1)));
    } else {
        d = _mm512_div_ps(f, _mm512_set1_ps(bits == 8 ? 127.0f : -(float)(1 << (bits - 1))));
    }
    nonzero = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    id = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), d);
    if (_mm512_cmp_ps_mask(lq_gguf_abs(id), limit, _CMP_LE_OQ) != 0xffff)
        return 1;
    _mm256_storeu_si256((__m256i *)d_bits, _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_si256((__m256i *)m_bits, _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm512_storeu_ps(ids, id);
    _mm512_storeu_ps(los, affine ? f : _mm512_setzero_ps());
    for (b = 0; b < LQ_GGUF_GROUP; b++) {
        const float *p = x + b * LQ_GGUF_BLOCK;
        uint8_t *y = out + b * size;
        __m512i c0, c1;
        lq_gguf_codes16(type, _mm512_loadu_ps(p), _mm512_loadu_ps(p + 16), _mm512_set1_ps(ids[b]),
                        _mm512_set1_ps(los[b]), &c0, &c1);
        memcpy(y, &d_bits[b], 2); /* x86 is little-endian, as the blocks */
        if (affine)
            memcpy(y + 2, &m_bits[b], 2);
        if (bits == 8) {
            _mm_storeu_si128((__m128i *)(y + 2), _mm512_cvtepi32_epi8(c0));
            _mm_storeu_si128((__m128i *)(y + 18), _mm512_cvtepi32_epi8(c1));
            continue;
        }
        if (bits == 5) {
            __m512i bit4 = _mm512_set1_epi32(16);
            uint32_t qh = (uint32_t)_mm512_test_epi32_mask(c0, bit4) |
                          ((uint32_t)_mm512_test_epi32_mask(c1, bit4) << 16);
            memcpy(y + start - 4, &qh, 4);
        }
        {
            __m512i low = _mm512_set1_epi32(15);
            __m512i nibbles = _mm512_or_si512(_mm512_and_si512(c0, low),
                                              _mm512_slli_epi32(_mm512_and_si512(c1, low), 4));
            _mm_storeu_si128((__m128i *)(y + start), _mm512_cvtepi32_epi8(nibbles));
        }
    }
    return 0;
}
#elif defined(__AVX2__)
#include <immintrin.h>

/*
 * AVX2: 8 blocks a group, the same arithmetic to the bit. Each block's range is reduced in
 * registers (as integers on the bits of |x|, whose order is that of the values when finite);
 * the 8 scales and reciprocals are computed as one vector and converted to float16 by
 * lq_gguf_half_bits8 (the avx2 level has no F16C); each block's codes are then computed,
 * packed and stored from its four vectors.
 */
#define LQ_GGUF_GROUP 8

/* lq_half_bits of 8 finite floats, in the low 16 bits of each lane: the subnormal halves by
   a float addition of 0.5 (whose unit in the last place is 2^-24, the subnormal half's),
   the normal ones by adding a half unit less one, plus the last kept bit (ties to even). */
static inline __m256i lq_gguf_half_bits8(__m256 f)
{
    __m256i bits = _mm256_castps_si256(f);
    __m256i sign = _mm256_and_si256(bits, _mm256_set1_epi32((int)0x80000000u));
    __m256i magnitude = _mm256_xor_si256(bits, sign);
    __m256 half = _mm256_set1_ps(0.5f);
    __m256i subnormal = _mm256_sub_epi32(
        _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(magnitude), half)),
        _mm256_castps_si256(half));
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(magnitude, 13), _mm256_set1_epi32(1));
    __m256i normal = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(magnitude, _mm256_set1_epi32((int)(0xfffu - (112u << 23)))), odd), 13);
    __m256i is_normal = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x387fffff));
    __m256i overflows = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x477fffff));
    __m256i h = _mm256_blendv_epi8(subnormal, normal, is_normal);
    h = _mm256_blendv_epi8(h, _mm256_set1_epi32(0x7c00), overflows);
    return _mm256_or_si256(h, _mm256_srli_epi32(sign, 16));
}

static inline __m256 lq_gguf_abs8(__m256 v)
{
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fffffff)));
}

/* The largest of 8 unsigned lanes; of 8 floats without NaN, the least and the largest. */
static inline uint32_t lq_gguf_max8_u32(__m256i v)
{
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4e));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

static inline float lq_gguf_min8_ps(__m256 v)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, 0x4e));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, 0xb1));
    return _mm_cvtss_f32(m);
}

static inline float lq_gguf_max8_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, 0x4e));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, 0xb1));
    return _mm_cvtss_f32(m);
}

/* The first x[j] (j < 32) whose lane of v[j / 8] equals `value` (as floats). */
static inline float lq_gguf_first_of8(const float *x, const __m256 v[4], __m256 value)
{
    uint32_t equal = 0;
    int k;
    for (k = 0; k < 4; k++)
        equal |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v[k], value, _CMP_EQ_OQ)) << (8 * k);
    return x[__builtin_ctz(equal)];
}

/* Quantize 8 blocks; 0, or 1 if one of them is undefined (nothing trusted: the caller redoes
   the group block by block). */
LQ_GGUF_INLINE int lq_gguf_group(int type, const float *x, uint8_t *out)
{
    float first[LQ_GGUF_GROUP], second[LQ_GGUF_GROUP], ids[LQ_GGUF_GROUP], los[LQ_GGUF_GROUP];
    uint32_t d_bits[LQ_GGUF_GROUP], m_bits[LQ_GGUF_GROUP];
    int affine = type == LQ_GGUF_Q4_1 || type == LQ_GGUF_Q5_1;
    int bits = type == LQ_GGUF_Q8_0 ? 8 : type == LQ_GGUF_Q4_0 || type == LQ_GGUF_Q4_1 ? 4 : 5;
    ptrdiff_t size = lq_gguf_type_size(type), start = size - (bits == 8 ? 32 : 16);
    __m256i finite_max = _mm256_set1_epi32(0x7f7fffff); /* FLT_MAX's bits */
    __m256 d, id, f;
    int b, k;
    for (b = 0; b < LQ_GGUF_GROUP; b++) {
        const float *p = x + b * LQ_GGUF_BLOCK;
        __m256 v[4], a[4];
        __m256i amax_bits;
        for (k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(p + 8 * k);
            a[k] = lq_gguf_abs8(v[k]);
        }
        amax_bits = _mm256_max_epu32(_mm256_max_epu32(_mm256_castps_si256(a[0]), _mm256_castps_si256(a[1])),
                                     _mm256_max_epu32(_mm256_castps_si256(a[2]), _mm256_castps_si256(a[3])));
        {
            uint32_t largest = lq_gguf_max8_u32(amax_bits);
            float amax;
            if (largest > 0x7f7fffffu) /* a NaN or an infinity */
                return 1;
            memcpy(&amax, &largest, sizeof amax);
            if (affine) {
                float lo = lq_gguf_min8_ps(_mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3])));
                float hi = lq_gguf_max8_ps(_mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3])));
                first[b] = lo == 0.0f ? lq_gguf_first_of8(p, v, _mm256_set1_ps(lo)) : lo;
                second[b] = hi == 0.0f ? lq_gguf_first_of8(p, v, _mm256_set1_ps(hi)) : hi;
            } else if (bits == 8) {
                first[b] = amax;
            } else { /* the first value of largest magnitude; all zeros: +0.0 */
                first[b] = amax > 0.0f ? lq_gguf_first_of8(p, a, _mm256_set1_ps(amax)) : 0.0f;
            }
        }
    }
    f = _mm256_loadu_ps(first);
    if (affine) {
        __m256 span = _mm256_sub_ps(_mm256_loadu_ps(second), f);
        if (_mm256_movemask_epi8(_mm256_cmpgt_epi32(_mm256_castps_si256(lq_gguf_abs8(span)), finite_max)))
            return 1;
        d = _mm256_div_ps(span, _mm256_set1_ps((float)((1 << bits) - 1)));
    } else {
        d = _mm256_div_ps(f, _mm256_set1_ps(bits == 8 ? 127.0f : -(float)(1 << (bits - 1))));
    }
    id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d),
                       _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ)); /* d ? 1/d : 0 */
    if (_mm256_movemask_epi8(_mm256_cmpgt_epi32(_mm256_castps_si256(lq_gguf_abs8(id)), finite_max)))
        return 1;
    _mm256_storeu_si256((__m256i *)d_bits, lq_gguf_half_bits8(d));
    _mm256_storeu_si256((__m256i *)m_bits, lq_gguf_half_bits8(f));
    _mm256_storeu_ps(ids, id);
    _mm256_storeu_ps(los, affine ? f : _mm256_setzero_ps());
    for (b = 0; b < LQ_GGUF_GROUP; b++) {
        const float *p = x + b * LQ_GGUF_BLOCK;
        uint8_t *y = out + b * size;
        __m256 scale = _mm256_set1_ps(ids[b]), lo = _mm256_set1_ps(los[b]);
        __m256i c[4];
        y[0] = (uint8_t)d_bits[b];
        y[1] = (uint8_t)(d_bits[b] >> 8);
        if (affine) {
            y[2] = (uint8_t)m_bits[b];
            y[3] = (uint8_t)(m_bits[b] >> 8);
        }
        if (bits == 8) { /* roundf: trunc, then 1 away from zero from a half up */
            __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
            __m256i pairs01, pairs23, order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for (k = 0; k < 4; k++) {
                __m256 t = _mm256_mul_ps(_mm256_loadu_ps(p + 8 * k), scale);
                __m256 w = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
                __m256 up = _mm256_cmp_ps(lq_gguf_abs8(_mm256_sub_ps(t, w)), half, _CMP_GE_OQ);
                __m256 step = _mm256_and_ps(_mm256_or_ps(_mm256_and_ps(t, sign), one), up);
                c[k] = _mm256_cvttps_epi32(_mm256_add_ps(w, step));
            }
            /* |code| <= 127: the saturating packs keep them; they interleave the 128-bit
               lanes, which the permutation undoes */
            pairs01 = _mm256_packs_epi32(c[0], c[1]);
            pairs23 = _mm256_packs_epi32(c[2], c[3]);
            _mm256_storeu_si256((__m256i *)(y + 2),
                                _mm256_permutevar8x32_epi32(_mm256_packs_epi16(pairs01, pairs23), order));
            continue;
        }
        {
            __m256 offset = _mm256_set1_ps(affine ? 0.5f : (float)(1 << (bits - 1)) + 0.5f);
            __m256i top = _mm256_set1_epi32((1 << bits) - 1), low = _mm256_set1_epi32(15);
            __m256i bytes0, bytes1, words;
            for (k = 0; k < 4; k++) {
                __m256 value = _mm256_loadu_ps(p + 8 * k);
                if (affine)
                    value = _mm256_sub_ps(value, lo);
                c[k] = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(value, scale), offset)), top);
            }
            if (bits == 5) { /* bit 4 of each code, moved to the sign bit */
                uint32_t qh = 0;
                for (k = 0; k < 4; k++)
                    qh |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(c[k], 27))) << (8 * k);
                memcpy(y + start - 4, &qh, 4); /* x86 is little-endian, as the blocks */
            }
            /* byte j: code j low, code j + 16 high (codes 0-7 with 16-23, 8-15 with 24-31) */
            bytes0 = _mm256_or_si256(_mm256_and_si256(c[0], low), _mm256_slli_epi32(_mm256_and_si256(c[2], low), 4));
            bytes1 = _mm256_or_si256(_mm256_and_si256(c[1], low), _mm256_slli_epi32(_mm256_and_si256(c[3], low), 4));
            words = _mm256_permute4x64_epi64(_mm256_packus_epi32(bytes0, bytes1), 0xd8);
            _mm_storeu_si128((__m128i *)(y + start),
                             _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1)));
        }
    }
    return 0;
}
#endif

#ifdef LQ_GGUF_GROUP
/* The blocks before the first group holding an undefined block (a multiple of the group). */
LQ_GGUF_INLINE ptrdiff_t lq_gguf_groups_of(int type, const float *x, ptrdiff_t n_blocks,
                                                 uint8_t *out)
{
    ptrdiff_t b, size = lq_gguf_type_size(type);
    for (b = 0; b + LQ_GGUF_GROUP <= n_blocks; b += LQ_GGUF_GROUP)
        if (lq_gguf_group(type, x + b * LQ_GGUF_BLOCK, out + b * size))
            break;
    return b;
}

static ptrdiff_t lq_gguf_groups(int type, const float *x, ptrdiff_t n_blocks, uint8_t *out)
{
    switch (type) {
    case LQ_GGUF_Q4_0: return lq_gguf_groups_of(LQ_GGUF_Q4_0, x, n_blocks, out);
    case LQ_GGUF_Q4_1: return lq_gguf_groups_of(LQ_GGUF_Q4_1, x, n_blocks, out);
    case LQ_GGUF_Q5_0: return lq_gguf_groups_of(LQ_GGUF_Q5_0, x, n_blocks, out);
    case LQ_GGUF_Q5_1: return lq_gguf_groups_of(LQ_GGUF_Q5_1, x, n_blocks, out);
    default: return lq_gguf_groups_of(LQ_GGUF_Q8_0, x, n_blocks, out);
    }
}
#endif

/* Quantize n_blocks blocks of x (32 floats each) to the blocks at out (type_size bytes each,
   `type` one of lq_gguf_type_size's). Return the index of the first block ggml's reference
   leaves undefined, where it stops (the blocks from there on are not written); else -1. */
static inline ptrdiff_t lq_gguf_quantize(int type, const float *x, ptrdiff_t n_blocks,
                                         uint8_t *out)
{
    ptrdiff_t b = 0, size = lq_gguf_type_size(type);
#ifdef LQ_GGUF_GROUP
    b = lq_gguf_groups(type, x, n_blocks, out); /* the block by block loop finds the undefined */
#endif
    for (; b < n_blocks; b++)
        if (lq_gguf_quantize_block(type, x + b * LQ_GGUF_BLOCK, out + b * size))
            return b;
    return -1;
}

/* Every value of a block whose d or m is NaN: that NaN (d's first), quieted. */
static inline void lq_gguf_fill_nan(float nan, float *out)
{
    uint32_t bits;
    int j;
    memcpy(&bits, &nan, sizeof bits);
    bits |= 0x00400000u;
    memcpy(&nan, &bits, sizeof nan);
    for (j = 0; j < LQ_GGUF_BLOCK; j++)
        out[j] = nan;
}

#ifdef __AVX2__
#include <immintrin.h>

/* A block of scale d and minimum m (0 for the symmetric types) in AVX2 (AVX-512 builds have
   it too), as lq_gguf_dequantize_block: each 8 codes widened to int32 from bytes. */
LQ_GGUF_INLINE void lq_gguf_dequantize_avx2(int type, const uint8_t *y, float d_value,
                                            float m_value, float *out)
{
    int affine = type == LQ_GGUF_Q4_1 || type == LQ_GGUF_Q5_1;
    int five = type == LQ_GGUF_Q5_0 || type == LQ_GGUF_Q5_1;
    ptrdiff_t start = lq_gguf_type_size(type) - (type == LQ_GGUF_Q8_0 ? 32 : 16);
    __m128i codes[2]; /* 4- and 5-bit: the codes as bytes, elements 0-15, then 16-31 */
    __m256i offset = _mm256_set1_epi32(affine || type == LQ_GGUF_Q8_0 ? 0 : five ? 16 : 8);
    __m256 d = _mm256_set1_ps(d_value), m = _mm256_set1_ps(m_value);
    int k;
    if (type != LQ_GGUF_Q8_0) {
        __m128i q = _mm_loadu_si128((const __m128i *)(y + start)), low = _mm_set1_epi8(15);
        codes[0] = _mm_and_si128(q, low);
        codes[1] = _mm_and_si128(_mm_srli_epi16(q, 4), low);
    }
    if (five) { /* byte j of each half gets bit j of its 16 bits of qh, as 16 */
        uint32_t qh;
        __m128i bit = _mm_set1_epi64x(0x8040201008040201LL), sixteen = _mm_set1_epi8(16);
        memcpy(&qh, y + start - 4, 4); /* x86 is little-endian, as the blocks */
        for (k = 0; k < 2; k++) {
            __m128i spread = _mm_shuffle_epi8(_mm_cvtsi32_si128((int)(qh >> (16 * k))),
                                              _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
            __m128i set = _mm_cmpeq_epi8(_mm_and_si128(spread, bit), bit);
            codes[k] = _mm_or_si128(codes[k], _mm_and_si128(set, sixteen));
        }
    }
    for (k = 0; k < 4; k++) {
        __m256i widened;
        __m256 value;
        if (type == LQ_GGUF_Q8_0) {
            widened = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(y + start + 8 * k)));
        } else {
            __m128i eight = k % 2 ? _mm_srli_si128(codes[k / 2], 8) : codes[k / 2];
            widened = _mm256_sub_epi32(_mm256_cvtepu8_epi32(eight), offset);
        }
        value = _mm256_mul_ps(_mm256_cvtepi32_ps(widened), d);
        if (affine)
            value = _mm256_add_ps(value, m);
        _mm256_storeu_ps(out + 8 * k, value);
    }
}
#endif

/* Dequantize one block: element j = code_j * d (+ m), each operation rounded to float32 as
   ggml's dequantize_row_* do (the signed types subtract their offset in integers first). */
LQ_GGUF_INLINE void lq_gguf_dequantize_block(int type, const uint8_t *y, float *out)
{
    int affine = type == LQ_GGUF_Q4_1 || type == LQ_GGUF_Q5_1;
    float d = lq_get_half(y), m = affine ? lq_get_half(y + 2) : 0.0f;
    if (d != d || m != m) { /* which NaN a sum of two keeps is the compiler's choice: fixed */
        lq_gguf_fill_nan(d != d ? d : m, out);
        return;
    }
#ifdef __AVX2__
    lq_gguf_dequantize_avx2(type, y, d, m, out); /* the compiler's loops: up to 3x slower */
#else
    uint32_t qh;
    int j;
    switch (type) {
    case LQ_GGUF_Q8_0:
        for (j = 0; j < LQ_GGUF_BLOCK; j++)
            out[j] = (float)(int8_t)y[2 + j] * d;
        return;
    case LQ_GGUF_Q4_0:
        for (j = 0; j < LQ_GGUF_BLOCK / 2; j++) {
            out[j] = (float)((y[2 + j] & 15) - 8) * d;
            out[j + 16] = (float)((y[2 + j] >> 4) - 8) * d;
        }
        return;
    case LQ_GGUF_Q4_1:
        for (j = 0; j < LQ_GGUF_BLOCK / 2; j++) {
            out[j] = (float)(y[4 + j] & 15) * d + m;
            out[j + 16] = (float)(y[4 + j] >> 4) * d + m;
        }
        return;
    case LQ_GGUF_Q5_0:
        qh = (uint32_t)y[2] | ((uint32_t)y[3] << 8) | ((uint32_t)y[4] << 16) | ((uint32_t)y[5] << 24);
        for (j = 0; j < LQ_GGUF_BLOCK / 2; j++) {
            out[j] = (float)((int)((y[6 + j] & 15) | (((qh >> j) & 1u) << 4)) - 16) * d;
            out[j + 16] = (float)((int)((y[6 + j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16) * d;
        }
        return;
    default: /* Q5_1 */
        qh = (uint32_t)y[4] | ((uint32_t)y[5] << 8) | ((uint32_t)y[6] << 16) | ((uint32_t)y[7] << 24);
        for (j = 0; j < LQ_GGUF_BLOCK / 2; j++) {
            out[j] = (float)((y[8 + j] & 15) | (((qh >> j) & 1u) << 4)) * d + m;
            out[j + 16] = (float)((y[8 + j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) * d + m;
        }
        return;
    }
#endif
}

/* Dequantize n_blocks blocks of a `type` that is a constant where this is inlined. */
LQ_GGUF_INLINE void lq_gguf_dequantize_of(int type, const uint8_t *blocks, ptrdiff_t n_blocks,
                                          float *out)
{
    ptrdiff_t b, size = lq_gguf_type_size(type);
    for (b = 0; b < n_blocks; b++)
        lq_gguf_dequantize_block(type, blocks + b * size, out + b * LQ_GGUF_BLOCK);
}

/* Dequantize n_blocks blocks at `blocks` into out (32 floats each), one loop a type. */
static inline void lq_gguf_dequantize(int type, const uint8_t *blocks, ptrdiff_t n_blocks,
                                      float *out)
{
    switch (type) {
    case LQ_GGUF_Q4_0: lq_gguf_dequantize_of(LQ_GGUF_Q4_0, blocks, n_blocks, out); return;
    case LQ_GGUF_Q4_1: lq_gguf_dequantize_of(LQ_GGUF_Q4_1, blocks, n_blocks, out); return;
    case LQ_GGUF_Q5_0: lq_gguf_dequantize_of(LQ_GGUF_Q5_0, blocks, n_blocks, out); return;
    case LQ_GGUF_Q5_1: lq_gguf_dequantize_of(LQ_GGUF_Q5_1, blocks, n_blocks, out); return;
    default: lq_gguf_dequantize_of(LQ_GGUF_Q8_0, blocks, n_blocks, out); return;
    }
}

#endif
