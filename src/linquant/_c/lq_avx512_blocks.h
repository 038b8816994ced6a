/*
 * AVX-512 kernels for blocks along contiguous float32 runs: given parameters, and dynamic
 * blocks whose parameters (SPEC §4) are computed from the block's range in registers.
 * Included by lq_kernels.h in AVX-512 builds only.
 */
#ifndef LINQUANT_LQ_AVX512_BLOCKS_H
#define LINQUANT_LQ_AVX512_BLOCKS_H

#include "lq_avx512_tensor.h"

/*
 * The given-parameter per-block kernels come once per code type and zero point type: int32
 * zero points, and zero points of the code type itself (ONNX's y_zero_point), which the
 * _zcode kernels read in place, sparing a converted copy (a pass over every zero point).
 * X(code type, zero point type, code suffix, kernel suffix, zero point suffix) for each:
 * lq_quantize_blocks_u8, ..._i16 and lq_quantize_blocks_u8_zcode, ..._i16_zcode, with their
 * parts.
 */
#define LQ_FOR_BLOCK_KERNELS(X)                                                               \
    X(uint8_t, int32_t, u8, u8, i32)                                                          \
    X(int8_t, int32_t, i8, i8, i32)                                                           \
    X(uint16_t, int32_t, u16, u16, i32)                                                       \
    X(int16_t, int32_t, i16, i16, i32)                                                        \
    X(uint8_t, uint8_t, u8, u8_zcode, u8)                                                     \
    X(int8_t, int8_t, i8, i8_zcode, i8)                                                       \
    X(uint16_t, uint16_t, u16, u16_zcode, u16)                                                \
    X(int16_t, int16_t, i16, i16_zcode, i16)

/*
 * The code types of the dynamic per-block kernels: X(code type, its least and greatest value,
 * name suffix, the LQ_LINE_* packing of its 64-byte lines).
 */
#define LQ_FOR_CODE_TYPES(X)                                                                  \
    X(uint8_t, 0, 255, u8, LQ_LINE_U8)                                                        \
    X(int8_t, -128, 127, i8, LQ_LINE_I8)                                                      \
    X(uint16_t, 0, 65535, u16, LQ_LINE_U16)                                                   \
    X(int16_t, -32768, 32767, i16, LQ_LINE_I16)

/*
 * Per-block quantization along a contiguous run (float32): a block's scale and zero point are
 * broadcast to vectors of 16 values, its last partial vector is loaded and stored under a mask
 * (masked-off lanes are neither read nor written), so a block of 32 costs two vector steps
 * instead of a loop's entry and exit. Codes of a block that starts 16 codes into an aligned
 * run may go out with non-temporal stores (16 or 32 bytes: the write-combining buffers still
 * fill whole lines). The arithmetic is LQ_QUANTIZE16_ROUNDED's, the fast form: callers check
 * that every zero point's bounds are within LQ_FAST_BOUND.
 */
static inline int lq_fast_zero_point(int64_t zero_point, int qmin, int qmax)
{
    return qmin - zero_point >= -LQ_FAST_BOUND && qmax - zero_point <= LQ_FAST_BOUND;
}
/* The lanes of z whose zero points keep the fast form. */
static inline __mmask16 lq_fast_zero_points16(__m512i z, int qmin, int qmax)
{
    return _mm512_cmp_epi32_mask(z, _mm512_set1_epi32(qmin + LQ_FAST_BOUND), _MM_CMPINT_LE) &
           _mm512_cmp_epi32_mask(z, _mm512_set1_epi32(qmax - LQ_FAST_BOUND), _MM_CMPINT_NLT);
}
/* A block's parameters as vectors: scale, the fast form's bounds, zero point. */
typedef struct {
    __m512 scale, lo, hi;
    __m512i zero_point;
} lq_block_vectors;
LQ_VECTOR_INLINE lq_block_vectors lq_broadcast(float scale, int zero_point, int qmin, int qmax)
{
    lq_block_vectors v;
    v.scale = _mm512_set1_ps(scale);
    v.lo = _mm512_set1_ps((float)(qmin - zero_point));
    v.hi = _mm512_set1_ps((float)(qmax - zero_point));
    v.zero_point = _mm512_set1_epi32(zero_point);
    return v;
}
/* The deterministic rounding modes' codes (lq_avx512_tensor.h): no draws. */
#define LQ_QUANTIZE_BLOCK16(v, p, CODES)                                                      \
    LQ_QUANTIZE16_ROUNDED(p, v.scale, v.lo, v.hi, v.zero_point, &nan, CODES, NULL)
/* Quantize a block of n values with the parameters p; nonzero if one was NaN. One per code
   type and deterministic rounding mode: lq_quantize_block_u8_half_even, ... */
#define LQ_DEFINE_QUANTIZE_BLOCK(CODE, S, STORE, STREAM, MASK_STORE, SUFFIX, CODES)           \
    LQ_VECTOR_INLINE int lq_quantize_block_##S##SUFFIX(const float *x, ptrdiff_t n,           \
                                                       lq_block_vectors p, CODE *out,         \
                                                       int stream)                            \
    {                                                                                         \
        __mmask16 nan = 0;                                                                    \
        ptrdiff_t i = 0;                                                                      \
        if (stream)                                                                           \
            for (; i + 16 <= n; i += 16)                                                      \
                STREAM(out + i, LQ_QUANTIZE_BLOCK16(p, _mm512_loadu_ps(x + i), CODES));       \
        else                                                                                  \
            for (; i + 16 <= n; i += 16)                                                      \
                STORE(out + i, LQ_QUANTIZE_BLOCK16(p, _mm512_loadu_ps(x + i), CODES));        \
        if (i < n) {                                                                          \
            __mmask16 m = lq_first(n - i);                                                    \
            __m512 v = _mm512_maskz_loadu_ps(m, x + i);                                       \
            MASK_STORE(out + i, m, LQ_QUANTIZE_BLOCK16(p, v, CODES));                         \
        }                                                                                     \
        return nan != 0;                                                                      \
    }
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_BLOCK, uint8_t, u8, LQ_STORE_U8, LQ_STREAM_U8,
                     LQ_MASK_STORE_U8)
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_BLOCK, int8_t, i8, LQ_STORE_U8, LQ_STREAM_U8,
                     LQ_MASK_STORE_U8)
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_BLOCK, uint16_t, u16, LQ_STORE_U16, LQ_STREAM_U16,
                     LQ_MASK_STORE_U16)
LQ_FOR_DETERMINISTIC(LQ_DEFINE_QUANTIZE_BLOCK, int16_t, i16, LQ_STORE_U16, LQ_STREAM_U16,
                     LQ_MASK_STORE_U16)

/*
 * Given parameters: blocks of `block` values along a run of n, block b with scale[b * step]
 * and zero_point[b * zero_point_step]. Returns 1 if a value was NaN, -1 if a zero point is
 * out of the fast form's bounds; then the caller does the run again its own way.
 */
#define LQ_DEFINE_QUANTIZE_BLOCKS(CODE, ZP, NAME, BLOCK)                                      \
    LQ_ROW_KERNEL int NAME(const float *x, ptrdiff_t n, ptrdiff_t block, const float *scale,  \
                           ptrdiff_t scale_step, const ZP *zero_point,                        \
                           ptrdiff_t zero_point_step, int qmin, int qmax, CODE *out,          \
                           int stream)                                                        \
    {                                                                                         \
        ptrdiff_t a, b, len;                                                                  \
        int nan = 0;                                                                          \
        stream = stream && lq_can_stream(out, block, sizeof(CODE));                           \
        for (a = 0, b = 0; a < n; a += block, b++) {                                          \
            int z = zero_point[b * zero_point_step];                                          \
            if (!lq_fast_zero_point(z, qmin, qmax))                                           \
                return -1;                                                                    \
            len = n - a < block ? n - a : block;                                              \
            nan |= BLOCK(x + a, len, lq_broadcast(scale[b * scale_step], z, qmin, qmax),      \
                         out + a, stream);                                                    \
        }                                                                                     \
        return nan;                                                                           \
    }
/* lq_quantize_blocks_any_<N><mode suffix> for each deterministic rounding mode: other modes
   than half to even take these for every block size. */
#define LQ_BLOCKS_ANY_MODE(CODE, ZP, S, N, SUFFIX, CODES)                                     \
    LQ_DEFINE_QUANTIZE_BLOCKS(CODE, ZP, lq_quantize_blocks_any_##N##SUFFIX,                   \
                              lq_quantize_block_##S##SUFFIX)
#define LQ_BLOCKS_ANY(CODE, ZP, S, N, L) LQ_FOR_DETERMINISTIC(LQ_BLOCKS_ANY_MODE, CODE, ZP, S, N)
LQ_FOR_BLOCK_KERNELS(LQ_BLOCKS_ANY)

/*
 * A block's range, lane-wise: lo and hi vectors whose lanes together hold its n values'
 * minimum and maximum (lq_block_range16), or fold n more values into them (lq_fold_range16).
 * A NaN is left out (x86's min/max return their second operand when the first is NaN); the
 * quantize step finds it.
 */
LQ_VECTOR_INLINE void lq_fold_range16(const float *x, ptrdiff_t n, __m512 *lo, __m512 *hi)
{
    __m512 vlo = *lo, vhi = *hi;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        vlo = _mm512_min_ps(v, vlo);
        vhi = _mm512_max_ps(v, vhi);
    }
    if (i < n) {
        __mmask16 m = lq_first(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        vlo = _mm512_mask_min_ps(vlo, m, v, vlo);
        vhi = _mm512_mask_max_ps(vhi, m, v, vhi);
    }
    *lo = vlo;
    *hi = vhi;
}
LQ_VECTOR_INLINE void lq_block_range16(const float *x, ptrdiff_t n, __m512 *lo, __m512 *hi)
{
    *lo = _mm512_set1_ps(INFINITY);
    *hi = _mm512_set1_ps(-INFINITY);
    lq_fold_range16(x, n, lo, hi);
}

/*
 * Reduce 16 vectors at once: lane k of the result is the minimum (maximum) of v[k]'s lanes.
 * Each step pairs vectors u and w whose blocks span 2g lanes each and halves that: lane i
 * takes OP of u's lanes i and i + g where i % 2g < g, of w's lanes i and i - g elsewhere; a
 * blend gives the first operands and one two-source permute the second (one lane-crossing
 * instruction a pair, not two shuffles). So 16 reductions cost 15 vector steps instead of 16
 * horizontal ones. The last step leaves block k in lane bit_reverse4(k), which a permute puts
 * back.
 */
#define LQ_REDUCE_STEP(OP, u, w, mask, partner)                                               \
    OP(_mm512_mask_blend_ps(mask, u, w), _mm512_permutex2var_ps(u, partner, w))
#define LQ_DEFINE_REDUCE16(NAME, OP)                                                          \
    LQ_VECTOR_INLINE __m512 NAME(__m512 *v)                                                   \
    {                                                                                         \
        const __m512i partner8 =                                                              \
            _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);  \
        const __m512i partner4 =                                                              \
            _mm512_setr_epi32(4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 24, 25, 26, 27);    \
        const __m512i partner2 =                                                              \
            _mm512_setr_epi32(2, 3, 16, 17, 6, 7, 20, 21, 10, 11, 24, 25, 14, 15, 28, 29);    \
        const __m512i partner1 =                                                              \
            _mm512_setr_epi32(1, 16, 3, 18, 5, 20, 7, 22, 9, 24, 11, 26, 13, 28, 15, 30);     \
        const __m512i order =                                                                 \
            _mm512_setr_epi32(0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15);          \
        int k;                                                                                \
        for (k = 0; k < 8; k++)                                                               \
            v[k] = LQ_REDUCE_STEP(OP, v[2 * k], v[2 * k + 1], 0xFF00, partner8);              \
        for (k = 0; k < 4; k++)                                                               \
            v[k] = LQ_REDUCE_STEP(OP, v[2 * k], v[2 * k + 1], 0xF0F0, partner4);              \
        for (k = 0; k < 2; k++)                                                               \
            v[k] = LQ_REDUCE_STEP(OP, v[2 * k], v[2 * k + 1], 0xCCCC, partner2);              \
        return _mm512_permutexvar_ps(order, LQ_REDUCE_STEP(OP, v[0], v[1], 0xAAAA, partner1)); \
    }
LQ_DEFINE_REDUCE16(lq_reduce_min16, _mm512_min_ps)
LQ_DEFINE_REDUCE16(lq_reduce_max16, _mm512_max_ps)

/*
 * SPEC §4 for 16 ranges at once (lanes `valid`, each of at least one value, -0.0 allowed):
 * the arithmetic of _kernels.pxi's _block_params (and linquant._params), lane by lane to the
 * bit. x86's min/max return their second operand unless the first is smaller/larger, which is
 * the scalar `a if a < b else b`; the zero point's double arithmetic is exact in float here (a
 * float's rint is a float; a float integer is at most 2**31 - 1 exactly when it is below 2**31).
 * Writes scale_out[k], zero_point_out[k] (arrays: 16 blocks' broadcast vectors would be 4 KiB
 * of stores); returns nonzero if a valid lane's parameters raise or leave the fast form, and
 * the caller then takes the path that raises with the message.
 */
LQ_VECTOR_INLINE int lq_block_params16(__m512 lo, __m512 hi, __mmask16 valid, int bits,
                                      int is_signed, int include_zero, int qmin, int qmax,
                                      float *scale_out, int32_t *zero_point_out)
{
    const __m512 zero = _mm512_setzero_ps(), inf = _mm512_set1_ps(INFINITY);
    __m512 span, steps, scale;
    __m512i z = _mm512_setzero_si512();
    __mmask16 good;
    lo = _mm512_add_ps(lo, zero); /* -0.0 as +0.0 */
    hi = _mm512_add_ps(hi, zero);
    good = _mm512_cmp_ps_mask(_mm512_abs_ps(lo), inf, _CMP_LT_OQ) &
           _mm512_cmp_ps_mask(_mm512_abs_ps(hi), inf, _CMP_LT_OQ);
    if (is_signed) {
        span = _mm512_max_ps(_mm512_sub_ps(zero, lo), hi); /* -lo if -lo > hi else hi */
        steps = _mm512_set1_ps((float)((1 << (bits - 1)) - 1));
    } else {
        if (include_zero) {
            lo = _mm512_min_ps(lo, zero);
            hi = _mm512_max_ps(hi, zero);
        }
        span = _mm512_sub_ps(hi, lo);
        steps = _mm512_set1_ps((float)((1 << bits) - 1));
    }
    good &= _mm512_cmp_ps_mask(_mm512_abs_ps(span), inf, _CMP_LT_OQ);
    scale = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(span, zero, _CMP_EQ_OQ),
                                 _mm512_div_ps(span, steps), _mm512_set1_ps(1.0f));
    good &= _mm512_cmp_ps_mask(scale, zero, _CMP_NEQ_UQ); /* underflowed */
    if (!is_signed) {
        __m512 initial = _mm512_sub_ps(zero, _mm512_div_ps(lo, scale));
        if (include_zero) {
            __m512 top = _mm512_set1_ps((float)qmax);
            initial = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(initial, zero, _CMP_LT_OQ),
                                           initial, zero);
            initial = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(initial, top, _CMP_GT_OQ),
                                           initial, top);
        }
        initial = _mm512_roundscale_ps(initial, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        good &= _mm512_cmp_ps_mask(initial, _mm512_set1_ps(-2147483648.0f), _CMP_GE_OQ) &
                _mm512_cmp_ps_mask(initial, _mm512_set1_ps(2147483648.0f), _CMP_LT_OQ);
        z = _mm512_maskz_cvtps_epi32(good, initial);
        good &= lq_fast_zero_points16(z, qmin, qmax);
    }
    _mm512_storeu_ps(scale_out, scale);
    _mm512_storeu_si512((void *)zero_point_out, z);
    return (valid & ~good) != 0;
}

/*
 * Dynamic per-block quantization along a contiguous run of n values (float32), a group of up
 * to 16 blocks at a time while they are in the cache: their ranges (lq_block_range16,
 * lq_reduce_*16), their parameters in one vector step (lq_block_params16), then their codes.
 * A group holds at most LQ_GROUP_BYTES of input (at least one block), so that its codes read
 * it from the L1 cache. Block b's parameters go to scale[b * scale_step] and
 * zero_point[b * zero_point_step]. Returns 0, or nonzero where the caller must do the run its
 * own way: a NaN, or parameters that raise or leave the fast form.
 */
#define LQ_GROUP_BYTES 16384
/* While a group's codes are computed from the cache, the next group's input is read into L2
   ahead of its ranges: a chunk of codes at a time, each with the prefetches of its lines. */
#define LQ_CODES_CHUNK 256
/*
 * Blocks that fill a group alone (more than LQ_GROUP_BYTES / 2 of input: a group holds whole
 * blocks), one at a time, pipelined: while block b's codes are
 * computed from the cache, a chunk at a time, the same chunk of block b + 1 is folded into its
 * range (read from L2, where it was prefetched while block b - 1's codes were computed), and
 * block b + 2's chunk is prefetched. The range's minima and maxima then fill the issue slots
 * that the codes' divisions leave. Only the last block may be shorter than the others. Called
 * by LQ_DEFINE_BLOCK_DYNAMIC, whose contract it keeps.
 */
#define LQ_DEFINE_ONE_BLOCK_GROUPS(CODE, NAME, BLOCK)                                         \
    LQ_VECTOR_INLINE int NAME(const float *x, ptrdiff_t n, ptrdiff_t block, int bits,         \
                              int is_signed, int include_zero, int qmin, int qmax,            \
                              float *scale, ptrdiff_t scale_step, int32_t *zero_point,        \
                              ptrdiff_t zero_point_step, CODE *out, int stream)               \
    {                                                                                         \
        float s[16];                                                                          \
        int32_t z[16];                                                                        \
        __m512 lo, hi, next_lo, next_hi;                                                      \
        lq_block_vectors codes;                                                               \
        ptrdiff_t a, b, c, j, len, next_len, piece;                                           \
        int nan = 0;                                                                          \
        lq_block_range16(x, n < block ? n : block, &lo, &hi);                                 \
        for (a = 0, b = 0; a < n; a += block, b++) {                                          \
            len = n - a < block ? n - a : block;                                              \
            next_len = n - a - block < block ? n - a - block : block;                         \
            if (lq_block_params16(_mm512_set1_ps(_mm512_reduce_min_ps(lo)),                   \
                                  _mm512_set1_ps(_mm512_reduce_max_ps(hi)), 1, bits,          \
                                  is_signed, include_zero, qmin, qmax, s, z))                 \
                return 1;                                                                     \
            scale[b * scale_step] = s[0];                                                     \
            zero_point[b * zero_point_step] = z[0];                                           \
            codes = lq_broadcast(s[0], z[0], qmin, qmax);                                     \
            next_lo = _mm512_set1_ps(INFINITY);                                               \
            next_hi = _mm512_set1_ps(-INFINITY);                                              \
            for (c = 0; c < len; c += LQ_CODES_CHUNK) {                                       \
                piece = len - c < LQ_CODES_CHUNK ? len - c : LQ_CODES_CHUNK;                  \
                for (j = 0; j < piece; j += 16)                                               \
                    _mm_prefetch((const char *)(x + a + 2 * block + c + j), _MM_HINT_T1);     \
                if (c < next_len)                                                             \
                    lq_fold_range16(x + a + block + c,                                        \
                                    next_len - c < piece ? next_len - c : piece, &next_lo,    \
                                    &next_hi);                                                \
                nan |= BLOCK(x + a + c, piece, codes, out + a + c, stream);                   \
            }                                                                                 \
            if (nan)                                                                          \
                return 1;                                                                     \
            lo = next_lo;                                                                     \
            hi = next_hi;                                                                     \
        }                                                                                     \
        return 0;                                                                             \
    }
#define LQ_DEFINE_BLOCK_DYNAMIC(CODE, NAME, BLOCK, ONE_BLOCK_GROUPS)                          \
    LQ_ROW_KERNEL int NAME(const float *x, ptrdiff_t n, ptrdiff_t block, int bits,            \
                           int is_signed, int include_zero, int qmin, int qmax, float *scale, \
                           ptrdiff_t scale_step, int32_t *zero_point,                         \
                           ptrdiff_t zero_point_step, CODE *out, int stream)                  \
    {                                                                                         \
        const ptrdiff_t fit = LQ_GROUP_BYTES / (block * (ptrdiff_t)sizeof(float));           \
        const ptrdiff_t group = fit < 1 ? 1 : fit < 16 ? fit : 16;                            \
        __m512 lo[16], hi[16];                                                                \
        float group_scale[16];                                                                \
        int32_t group_zero_point[16];                                                         \
        ptrdiff_t a = 0, b = 0, k, g, len, c, j, piece;                                       \
        int nan = 0;                                                                          \
        stream = stream && lq_can_stream(out, block, sizeof(CODE));                           \
        if (group == 1)                                                                       \
            return ONE_BLOCK_GROUPS(x, n, block, bits, is_signed, include_zero, qmin, qmax,   \
                                    scale, scale_step, zero_point, zero_point_step, out,      \
                                    stream);                                                  \
        while (a < n) {                                                                       \
            const ptrdiff_t start = a;                                                        \
            for (g = 0; g < 16; g++, a += block) {                                            \
                if (a < n && g < group)                                                       \
                    lq_block_range16(x + a, n - a < block ? n - a : block, &lo[g], &hi[g]);   \
                else                                                                          \
                    lo[g] = hi[g] = _mm512_setzero_ps();                                      \
            }                                                                                 \
            g = (n - start + block - 1) / block;                                              \
            if (lq_block_params16(lq_reduce_min16(lo), lq_reduce_max16(hi),                   \
                                  lq_first(g < group ? g : group), bits, is_signed,           \
                                  include_zero, qmin, qmax, group_scale, group_zero_point))   \
                return 1;                                                                     \
            for (k = 0; k < group && start + k * block < n; k++, b++) {                       \
                const ptrdiff_t at = start + k * block;                                       \
                const float s = group_scale[k];                                               \
                const int32_t z = group_zero_point[k];                                        \
                const lq_block_vectors codes = lq_broadcast(s, z, qmin, qmax);                \
                len = n - at < block ? n - at : block;                                        \
                scale[b * scale_step] = s;                                                    \
                zero_point[b * zero_point_step] = z;                                          \
                for (c = 0; c < len; c += LQ_CODES_CHUNK) {                                   \
                    piece = len - c < LQ_CODES_CHUNK ? len - c : LQ_CODES_CHUNK;              \
                    for (j = 0; j < piece; j += 16) /* the next group's input, same offset */ \
                        _mm_prefetch((const char *)(x + at + c + j + group * block),          \
                                     _MM_HINT_T1);                                            \
                    nan |= BLOCK(x + at + c, piece, codes, out + at + c, stream);             \
                }                                                                             \
            }                                                                                 \
            if (nan)                                                                          \
                return 1;                                                                     \
            a = start + group * block;                                                        \
        }                                                                                     \
        return 0;                                                                             \
    }
/* lq_block_dynamic_any_<S><mode suffix> for each deterministic rounding mode: other modes
   than half to even take these for every block size. */
#define LQ_BLOCK_DYNAMIC_ANY_MODE(CODE, S, SUFFIX, CODES)                                     \
    LQ_DEFINE_ONE_BLOCK_GROUPS(CODE, lq_one_block_groups_##S##SUFFIX,                         \
                               lq_quantize_block_##S##SUFFIX)                                 \
    LQ_DEFINE_BLOCK_DYNAMIC(CODE, lq_block_dynamic_any_##S##SUFFIX,                           \
                            lq_quantize_block_##S##SUFFIX, lq_one_block_groups_##S##SUFFIX)
#define LQ_BLOCK_DYNAMIC_ANY(CODE, CODE_MIN, CODE_MAX, S, LINE)                              \
    LQ_FOR_DETERMINISTIC(LQ_BLOCK_DYNAMIC_ANY_MODE, CODE, S)
LQ_FOR_CODE_TYPES(LQ_BLOCK_DYNAMIC_ANY)

/*
 * Whole groups of 16 blocks of 16, 32, 64, 128 or 256 values (m = block / 16 vectors each),
 * the common block sizes, each compiled for its m (LQ_GROUP_SWITCH): the 16 blocks'
 * parameters are computed (dynamic) or loaded (given) as vectors, lane k for block k, and the
 * codes go out a 64-byte line at a time, packed by in-lane packs and one permute. A run's
 * last, partial group and other block sizes go to the kernels above.
 *
 * Division-free quotients (dynamic blocks): with r = RN(1 / s), q0 = RN(x * r) can be an ulp
 * off x / s, but one correction with the residual, RN(q0 + RN(x - q0 * s) * r) (two fused
 * multiply-adds), equals RN(x / s) for every pair of float significands: all 2**46 pairs were
 * checked against a correctly rounded division (scripts/check_quotient.cu; q0 alone differs
 * for about a quarter of them). Scaling x and s by powers of two scales every step exactly,
 * so this holds for all x and s while the steps stay normal: s in [2**-100, 2**100] keeps r
 * normal, |x| >= 2**-102 keeps the residual exact or normal, and a smaller x has
 * |x / s| < 1/4, which both forms round to 0. Other scales are handed back; the tests hold
 * rows near 2**-125 that the correction gets wrong. Why: a vector division takes several
 * times as long as a multiply.
 */
#define LQ_GROUP_SCALE_MIN 0x1p-100f
#define LQ_GROUP_SCALE_MAX 0x1p100f
/*
 * 16 blocks' parameters, element k for block k. Scale, reciprocal and zero point stay in
 * memory: each instruction that uses block k's reads it as an embedded broadcast ({1to16}),
 * part of its load: broadcasting them into registers would take an instruction of its own a
 * block (a permute or a broadcast load), which small blocks feel. The fast form's bounds
 * (given) stay vectors: a NaN must survive their min and max, and those return their second
 * operand, the one that may be a broadcast, for a NaN.
 */
typedef struct {
    __attribute__((aligned(64))) float scale[16];
    __attribute__((aligned(64))) float reciprocal[16];
    __attribute__((aligned(64))) int32_t zero_point[16];
    __m512 lo, hi;
} lq_group_params;
/* RN(x / s) as above, with s = *scale and r = *reciprocal broadcast from memory. */
LQ_VECTOR_INLINE __m512 lq_quotient16(__m512 x, const float *scale, const float *reciprocal)
{
    __m512 q;
    __asm__("vmulps %[r]%{1to16%}, %[x], %[q]\n\t"       /* q = x * r */
            "vfnmadd231ps %[s]%{1to16%}, %[q], %[x]\n\t" /* x = x - q * s */
            "vfmadd231ps %[r]%{1to16%}, %[x], %[q]"      /* q = q + x * r */
            : [q] "=&v"(q), [x] "+v"(x)
            : [r] "m"(*reciprocal), [s] "m"(*scale));
    return q;
}
/* RN(x / *scale), the divisor broadcast from memory. */
LQ_VECTOR_INLINE __m512 lq_divide16(__m512 x, const float *scale)
{
    __asm__("vdivps %[s]%{1to16%}, %[x], %[x]" : [x] "+v"(x) : [s] "m"(*scale));
    return x;
}
/* c + *zero_point, broadcast from memory. */
LQ_VECTOR_INLINE __m512i lq_add16(__m512i c, const int32_t *zero_point)
{
    __asm__("vpaddd %[z]%{1to16%}, %[c], %[c]" : [c] "+v"(c) : [z] "m"(*zero_point));
    return c;
}
/*
 * One vector of codes of block k, zero point added and within [qmin, qmax]. The int32 before
 * the zero point is folded into *low: it is INT32_MIN (what vcvtps2dq gives a NaN) only for a
 * NaN.
 * - dynamic: every x of a block lies in its range, so |x / s| is at most about
 *   |zero point| + 2**16 < 2**25 and the rounding converts it without overflow; clamping the
 *   integer is then the same as SPEC §2's clamp of the quotient. Unless `clamp`, [qmin, qmax]
 *   is the code type's whole range and the saturating packs of LQ_LINE_* clamp instead (two
 *   operations a vector fewer).
 * - given: the fast form (saturate, then round) with operands in the order that keeps a NaN;
 *   lo and hi are block k's bounds, broadcast.
 */
LQ_VECTOR_INLINE __m512i lq_group_code16(__m512 x, const lq_group_params *p, int k, __m512 lo,
                                         __m512 hi, __m512i qmin, __m512i qmax, int dynamic,
                                         int clamp, __m512i *low)
{
    __m512i c;
    if (dynamic) {
        c = _mm512_cvtps_epi32(lq_quotient16(x, &p->scale[k], &p->reciprocal[k]));
        *low = _mm512_min_epi32(*low, c);
        c = lq_add16(c, &p->zero_point[k]);
        return clamp ? _mm512_min_epi32(_mm512_max_epi32(c, qmin), qmax) : c;
    }
    c = _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_max_ps(lo, lq_divide16(x, &p->scale[k]))));
    *low = _mm512_min_epi32(*low, c);
    return lq_add16(c, &p->zero_point[k]);
}
/*
 * Dynamic blocks prefetch the input 16 KiB ahead into L2 while they compute codes from the
 * cache. Without it the memory idles during each group's codes (the hardware prefetcher
 * follows demand misses, and the codes make none), and a group's ranges then wait for it.
 * Blocks of 32 still wait for memory part of the time, a gap that no prefetch distance or hint
 * closes (the variants tried: bench/NOTES.md).
 */
#define LQ_GROUP_PREFETCH 16384
/*
 * The codes of one group of 16 blocks of m vectors (stream: out is 64-byte aligned). Returns
 * the lane-wise minimum of the int32 before the zero point (lq_group_code16), kept in a
 * register here (accumulated through a pointer, the row kernels' large bodies kept it in
 * memory). The lines are unrolled by 8: unrolling all 128 vectors of a group of blocks of 128
 * was slower.
 */
#define LQ_DEFINE_GROUP_CODES(CODE, NAME, LINE)                                               \
    LQ_VECTOR_INLINE __m512i NAME(const float *x, ptrdiff_t m, const lq_group_params *group,  \
                                  __m512i qmin, __m512i qmax, int dynamic, int clamp,         \
                                  CODE *out, int stream)                                      \
    {                                                                                         \
        enum { PER_LINE = 64 / (16 * (int)sizeof(CODE)) };                                    \
        __m512i v[PER_LINE], low = _mm512_set1_epi32(INT32_MAX);                             \
        __m512 lo = group->lo, hi = group->hi;                                                \
        ptrdiff_t line, at;                                                                   \
        int j;                                                                                \
        _Pragma("GCC unroll 8") for (line = 0; line < 16 * m / PER_LINE; line++) {            \
            _Pragma("GCC unroll 4") for (j = 0; j < PER_LINE; j++) {                          \
                at = line * PER_LINE + j;                                                     \
                if (dynamic)                                                                  \
                    _mm_prefetch((const char *)(x + 16 * at) + LQ_GROUP_PREFETCH,            \
                                 _MM_HINT_T1);                                                \
                else if (at % m == 0) {                                                       \
                    const __m512i lane = _mm512_set1_epi32((int)(at / m));                    \
                    lo = _mm512_permutexvar_ps(lane, group->lo);                              \
                    hi = _mm512_permutexvar_ps(lane, group->hi);                              \
                }                                                                             \
                v[j] = lq_group_code16(_mm512_loadu_ps(x + 16 * at), group, (int)(at / m), lo, \
                                       hi, qmin, qmax, dynamic, clamp, &low);                 \
            }                                                                                 \
            LQ_STORE_LINE(out + line * PER_LINE * 16, LINE(v), stream);                       \
        }                                                                                     \
        return low;                                                                           \
    }
#define LQ_GROUP_CODES(CODE, CODE_MIN, CODE_MAX, S, LINE)                                    \
    LQ_DEFINE_GROUP_CODES(CODE, lq_group_codes_##S, LINE)
LQ_FOR_CODE_TYPES(LQ_GROUP_CODES)
/* 16 values from p[0], p[step], ... as one vector (LOAD: from 16 contiguous ones, widened
   to int32 where T is a narrower integer). */
#define LQ_DEFINE_LOAD16(T, VECTOR, NAME, LOAD)                                               \
    LQ_VECTOR_INLINE VECTOR NAME(const T *p, ptrdiff_t step)                                  \
    {                                                                                         \
        T lanes[16];                                                                          \
        int k;                                                                                \
        if (step == 1)                                                                        \
            return LOAD(p);                                                                   \
        for (k = 0; k < 16; k++)                                                              \
            lanes[k] = p[k * step];                                                           \
        return LOAD(lanes);                                                                   \
    }
#define LQ_LOAD_I32(p) _mm512_loadu_si512((const void *)(p))
LQ_DEFINE_LOAD16(float, __m512, lq_load16_ps, _mm512_loadu_ps)
LQ_DEFINE_LOAD16(int32_t, __m512i, lq_load16_i32, LQ_LOAD_I32)
LQ_DEFINE_LOAD16(uint8_t, __m512i, lq_load16_u8, LQ_WIDEN_U8)
LQ_DEFINE_LOAD16(int8_t, __m512i, lq_load16_i8, LQ_WIDEN_I8)
LQ_DEFINE_LOAD16(uint16_t, __m512i, lq_load16_u16, LQ_WIDEN_U16)
LQ_DEFINE_LOAD16(int16_t, __m512i, lq_load16_i16, LQ_WIDEN_I16)
/* p[0], p[step], ... = the 16 lanes of v (the lanes go through an array of T: writing int32
   through a float pointer would break aliasing). */
#define LQ_DEFINE_STORE16(T, VECTOR, NAME, STORE)                                             \
    LQ_VECTOR_INLINE void NAME(T *p, ptrdiff_t step, VECTOR v)                                \
    {                                                                                         \
        T lanes[16];                                                                          \
        int k;                                                                                \
        if (step == 1) {                                                                      \
            STORE(p, v);                                                                      \
            return;                                                                           \
        }                                                                                     \
        STORE(lanes, v);                                                                      \
        for (k = 0; k < 16; k++)                                                              \
            p[k * step] = lanes[k];                                                           \
    }
#define LQ_STORE_I32(p, v) _mm512_storeu_si512((void *)(p), v)
LQ_DEFINE_STORE16(float, __m512, lq_store16_ps, _mm512_storeu_ps)
LQ_DEFINE_STORE16(int32_t, __m512i, lq_store16_epi32, LQ_STORE_I32)
/*
 * A group's ranges: lane-wise minimum and maximum of each block's m whole vectors. Not
 * lq_block_range16: its infinite start and masked last vector are work whole blocks never need.
 */
LQ_VECTOR_INLINE void lq_block_range(const float *x, ptrdiff_t m, __m512 *lo, __m512 *hi)
{
    __m512 l = _mm512_loadu_ps(x), h = l;
    ptrdiff_t j;
    _Pragma("GCC unroll 16") for (j = 1; j < m; j++) {
        __m512 v = _mm512_loadu_ps(x + 16 * j);
        l = _mm512_min_ps(v, l);
        h = _mm512_max_ps(v, h);
    }
    *lo = l;
    *hi = h;
}
LQ_VECTOR_INLINE void lq_group_ranges(const float *x, ptrdiff_t m, __m512 *lo, __m512 *hi)
{
    ptrdiff_t g;
    _Pragma("GCC unroll 16") for (g = 0; g < 16; g++)
        lq_block_range(x + 16 * m * g, m, &lo[g], &hi[g]);
}
/*
 * The whole groups of a run of given-parameter blocks (m vectors each): returns the number of
 * values done, or -1 if a zero point leaves the fast form; *nan is set if a value was NaN.
 */
#define LQ_DEFINE_GIVEN_GROUPS(CODE, ZP, NAME, GROUP_CODES, LOAD_ZP)                           \
    LQ_VECTOR_INLINE ptrdiff_t NAME(ptrdiff_t m, const float *x, ptrdiff_t n,                 \
                                    const float *scale, ptrdiff_t scale_step,                 \
                                    const ZP *zero_point, ptrdiff_t zero_point_step,          \
                                    int qmin, int qmax, CODE *out, int stream, int *nan)      \
    {                                                                                         \
        const ptrdiff_t size = 256 * m;                                                       \
        const __m512i vmin = _mm512_set1_epi32(qmin), vmax = _mm512_set1_epi32(qmax);         \
        __m512i low = _mm512_set1_epi32(INT32_MAX);                                           \
        lq_group_params group;                                                                \
        __m512i z;                                                                            \
        ptrdiff_t a;                                                                          \
        stream = stream && (uintptr_t)out % 64u == 0;                                         \
        for (a = 0; a + size <= n; a += size) {                                               \
            z = LOAD_ZP(zero_point + a / (16 * m) * zero_point_step, zero_point_step);        \
            if (lq_fast_zero_points16(z, qmin, qmax) != 0xffff)                               \
                return -1;                                                                    \
            _mm512_store_ps(group.scale,                                                      \
                            lq_load16_ps(scale + a / (16 * m) * scale_step, scale_step));     \
            _mm512_store_si512((void *)group.zero_point, z);                                  \
            group.lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(vmin, z));                         \
            group.hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(vmax, z));                         \
            low = _mm512_min_epi32(                                                           \
                low, GROUP_CODES(x + a, m, &group, vmin, vmax, 0, 0, out + a, stream));       \
        }                                                                                     \
        *nan = _mm512_cmpeq_epi32_mask(low, _mm512_set1_epi32(INT32_MIN)) != 0;               \
        return a;                                                                             \
    }
#define LQ_GIVEN_GROUPS(CODE, ZP, S, N, L)                                                    \
    LQ_DEFINE_GIVEN_GROUPS(CODE, ZP, lq_given_groups_##N, lq_group_codes_##S, lq_load16_##L)
LQ_FOR_BLOCK_KERNELS(LQ_GIVEN_GROUPS)
/*
 * The whole groups of a run of dynamic blocks: ranges, SPEC §4 for the 16 blocks at once, then
 * codes from the cache. Returns the number of values done, or -1 where the caller must do the
 * run its own way (a NaN, parameters that raise or leave the fast form, a scale outside
 * [LQ_GROUP_SCALE_MIN, LQ_GROUP_SCALE_MAX]).
 * Blocks of 32 are bound by the instructions themselves, even with their input in L2; the
 * reorderings of this loop that were tried and dropped are in bench/NOTES.md.
 */
#define LQ_DEFINE_DYNAMIC_GROUPS(CODE, CODE_MIN, CODE_MAX, NAME, GROUP_CODES)                 \
    LQ_VECTOR_INLINE ptrdiff_t NAME(ptrdiff_t m, const float *x, ptrdiff_t n, int bits,       \
                                    int is_signed, int include_zero, int qmin, int qmax,      \
                                    float *scale, ptrdiff_t scale_step, int32_t *zero_point,  \
                                    ptrdiff_t zero_point_step, CODE *out, int stream)         \
    {                                                                                         \
        const ptrdiff_t size = 256 * m;                                                       \
        const __m512i vmin = _mm512_set1_epi32(qmin), vmax = _mm512_set1_epi32(qmax);         \
        __m512i low = _mm512_set1_epi32(INT32_MAX);                                           \
        __m512 lo[16], hi[16];                                                                \
        const int clamp = qmin != CODE_MIN || qmax != CODE_MAX;                               \
        lq_group_params group;                                                                \
        __m512 s;                                                                             \
        ptrdiff_t a, b;                                                                       \
        stream = stream && (uintptr_t)out % 64u == 0;                                         \
        group.lo = group.hi = _mm512_setzero_ps();                                            \
        for (a = 0, b = 0; a + size <= n; a += size, b += 16) {                               \
            lq_group_ranges(x + a, m, lo, hi);                                                \
            if (lq_block_params16(lq_reduce_min16(lo), lq_reduce_max16(hi), 0xffff, bits,     \
                                  is_signed, include_zero, qmin, qmax, group.scale,           \
                                  group.zero_point))                                          \
                return -1;                                                                    \
            s = _mm512_load_ps(group.scale);                                                  \
            if (_mm512_cmp_ps_mask(s, _mm512_set1_ps(LQ_GROUP_SCALE_MIN), _CMP_LT_OQ) |       \
                _mm512_cmp_ps_mask(s, _mm512_set1_ps(LQ_GROUP_SCALE_MAX), _CMP_GT_OQ))        \
                return -1;                                                                    \
            _mm512_store_ps(group.reciprocal, _mm512_div_ps(_mm512_set1_ps(1.0f), s));        \
            lq_store16_ps(scale + b * scale_step, scale_step, s);                             \
            lq_store16_epi32(zero_point + b * zero_point_step, zero_point_step,               \
                             _mm512_load_si512((const void *)group.zero_point));              \
            low = _mm512_min_epi32(low, /* two calls: each compiled with its constant */      \
                                   clamp ? GROUP_CODES(x + a, m, &group, vmin, vmax, 1, 1,    \
                                                       out + a, stream)                       \
                                         : GROUP_CODES(x + a, m, &group, vmin, vmax, 1, 0,    \
                                                       out + a, stream));                     \
        }                                                                                     \
        if (_mm512_cmpeq_epi32_mask(low, _mm512_set1_epi32(INT32_MIN)))                       \
            return -1;                                                                        \
        return a;                                                                             \
    }
#define LQ_DYNAMIC_GROUPS(CODE, CODE_MIN, CODE_MAX, S, LINE)                                 \
    LQ_DEFINE_DYNAMIC_GROUPS(CODE, CODE_MIN, CODE_MAX, lq_dynamic_groups_##S,                \
                             lq_group_codes_##S)
LQ_FOR_CODE_TYPES(LQ_DYNAMIC_GROUPS)
/* result = CALL(m, ...) with m = block / 16 a constant for the block sizes above (each call
   compiled of its own), 0 for other sizes. */
#define LQ_GROUP_SWITCH(block, result, CALL, ...)                                             \
    switch (block) {                                                                          \
    case 16: result = CALL(1, __VA_ARGS__); break;                                            \
    case 32: result = CALL(2, __VA_ARGS__); break;                                            \
    case 64: result = CALL(4, __VA_ARGS__); break;                                            \
    case 128: result = CALL(8, __VA_ARGS__); break;                                           \
    case 256: result = CALL(16, __VA_ARGS__); break;                                          \
    default: result = 0;                                                                      \
    }
/* The per-block kernels the Cython loops call: whole groups above, the rest by the _any ones. */
#define LQ_DEFINE_QUANTIZE_BLOCKS_RUN(CODE, ZP, NAME, GROUPS, ANY)                            \
    LQ_ROW_KERNEL int NAME(const float *x, ptrdiff_t n, ptrdiff_t block, const float *scale,  \
                           ptrdiff_t scale_step, const ZP *zero_point,                        \
                           ptrdiff_t zero_point_step, int qmin, int qmax, CODE *out,          \
                           int stream)                                                        \
    {                                                                                         \
        ptrdiff_t done, blocks;                                                               \
        int nan = 0, rest;                                                                    \
        LQ_GROUP_SWITCH(block, done, GROUPS, x, n, scale, scale_step, zero_point,             \
                        zero_point_step, qmin, qmax, out, stream, &nan)                       \
        if (done < 0)                                                                         \
            return -1;                                                                        \
        if (done == n)                                                                        \
            return nan;                                                                       \
        blocks = done / block;                                                                \
        rest = ANY(x + done, n - done, block, scale + blocks * scale_step, scale_step,        \
                   zero_point + blocks * zero_point_step, zero_point_step, qmin, qmax,        \
                   out + done, stream);                                                       \
        return rest < 0 ? rest : (rest | nan);                                                \
    }
#define LQ_BLOCKS_RUN(CODE, ZP, S, N, L)                                                      \
    LQ_DEFINE_QUANTIZE_BLOCKS_RUN(CODE, ZP, lq_quantize_blocks_##N, lq_given_groups_##N,      \
                                  lq_quantize_blocks_any_##N##_half_even)
LQ_FOR_BLOCK_KERNELS(LQ_BLOCKS_RUN)
#define LQ_DEFINE_BLOCK_DYNAMIC_RUN(CODE, NAME, GROUPS, ANY)                                  \
    LQ_ROW_KERNEL int NAME(const float *x, ptrdiff_t n, ptrdiff_t block, int bits,            \
                           int is_signed, int include_zero, int qmin, int qmax, float *scale, \
                           ptrdiff_t scale_step, int32_t *zero_point,                         \
                           ptrdiff_t zero_point_step, CODE *out, int stream)                  \
    {                                                                                         \
        ptrdiff_t done, blocks;                                                               \
        LQ_GROUP_SWITCH(block, done, GROUPS, x, n, bits, is_signed, include_zero, qmin, qmax, \
                        scale, scale_step, zero_point, zero_point_step, out, stream)          \
        if (done < 0)                                                                         \
            return 1;                                                                         \
        if (done == n)                                                                        \
            return 0;                                                                         \
        blocks = done / block;                                                                \
        return ANY(x + done, n - done, block, bits, is_signed, include_zero, qmin, qmax,      \
                   scale + blocks * scale_step, scale_step,                                   \
                   zero_point + blocks * zero_point_step, zero_point_step, out + done,        \
                   stream);                                                                   \
    }
#define LQ_BLOCK_DYNAMIC_RUN(CODE, CODE_MIN, CODE_MAX, S, LINE)                              \
    LQ_DEFINE_BLOCK_DYNAMIC_RUN(CODE, lq_block_dynamic_##S, lq_dynamic_groups_##S,           \
                                lq_block_dynamic_any_##S##_half_even)
LQ_FOR_CODE_TYPES(LQ_BLOCK_DYNAMIC_RUN)

#endif /* LINQUANT_LQ_AVX512_BLOCKS_H */
