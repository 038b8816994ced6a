/*
 * The kernels the Cython layer (_kernels.pxi) calls: the only list of them. Each family takes
 * the code type as its first argument (LQ_U8, LQ_I8, LQ_U16, LQ_I16; `out`/`q`/`zero_point`
 * pointers of that type), so that Cython names one function for all code types. AVX-512
 * builds define them by the per-type kernels of lq_avx512_*.h; other builds by the stubs
 * below, which do nothing and say so (-1, or an empty [*begin, *end)), and the Cython loops
 * do the work.
 *
 * A new kernel family: its per-type kernels in an lq_avx512_*.h, one entry and one stub here,
 * one declaration in _kernels.pxi's `cdef extern` block.
 */
#ifndef LINQUANT_LQ_KERNELS_H
#define LINQUANT_LQ_KERNELS_H

#include "lq_cpu.h"
#include "lq_portable.h"

/* One entry per family (parameters in its declaration, below or in the stubs):
 * lq_quantize_lines       per-tensor quantize of a run's whole lines, in every rounding mode:
 *                         streamed, its aligned lines, non-temporally; else its first
 *                         lines; nonzero if one was NaN; [*begin, *end) is what it did
 * lq_stream_dequantize    per-tensor dequantize, likewise; returns 0
 * lq_quantize_each        parameters that change along a run (per-axis, innermost; the
 *                         rows of a block across rows), for up to LQ_EACH_ROWS runs that
 *                         share them, in the deterministic rounding modes: 0, 1 (a NaN), -1
 * lq_dequantize_each      likewise; 0, or -1 (not done)
 * lq_quantize_blocks      given per-block parameters, int32 zero points, in the deterministic
 *                         rounding modes: 0, 1 (a NaN), -1 (a zero point beyond the fast
 *                         form, stochastic rounding, or not done)
 * lq_quantize_blocks_zcode    the same with zero points of the code type, read in place
 * lq_block_dynamic        dynamic blocks, parameters out, in the deterministic rounding
 *                         modes: 0 done, else not done
 * lq_stream_fence         orders the non-temporal stores before the results are used
 * Rounding: the quantize families take the deterministic rounding modes (SPEC §2.1), and
 * lq_quantize_lines stochastic rounding too; the Cython loops do the rest.
 */
/* Runs given to one lq_quantize_each call by the Cython loops: loading the shared parameters
   once per this many runs keeps their cache traffic small, and more runs read more streams at
   once (bench/NOTES.md: 8 measured best of 1-16). A NaN redoes these runs. */
#define LQ_EACH_ROWS 8

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include "lq_avx512_blocks.h"
#include "lq_avx512_tensor.h"

/* return NAME_<code><SUFFIX><mode suffix>(...) for the code type `code` and a deterministic
   rounding mode other than half to even; -1 (not done) for stochastic rounding. */
#define LQ_BY_OTHER_DETERMINISTIC(mode, code, NAME, SUFFIX, ...)                              \
    switch (mode) {                                                                           \
    case LQ_HALF_AWAY: LQ_BY_CODE(code, NAME, SUFFIX##_half_away, __VA_ARGS__)                \
    case LQ_HALF_UP: LQ_BY_CODE(code, NAME, SUFFIX##_half_up, __VA_ARGS__)                    \
    case LQ_FLOOR: LQ_BY_CODE(code, NAME, SUFFIX##_floor, __VA_ARGS__)                        \
    case LQ_CEIL: LQ_BY_CODE(code, NAME, SUFFIX##_ceil, __VA_ARGS__)                          \
    case LQ_TRUNC: LQ_BY_CODE(code, NAME, SUFFIX##_trunc, __VA_ARGS__)                        \
    default: return -1;                                                                       \
    }
/* return NAME_<code><SUFFIX>(...) for the code type `code`. */
#define LQ_BY_CODE(code, NAME, SUFFIX, ...)                                                   \
    switch (code) {                                                                           \
    case LQ_U8: return NAME##_u8##SUFFIX(__VA_ARGS__);                                        \
    case LQ_I8: return NAME##_i8##SUFFIX(__VA_ARGS__);                                        \
    case LQ_U16: return NAME##_u16##SUFFIX(__VA_ARGS__);                                      \
    default: return NAME##_i16##SUFFIX(__VA_ARGS__);                                          \
    }
#define LQ_ENTRY static inline

LQ_ENTRY int lq_quantize_lines(int code, const float *x, ptrdiff_t n, float scale, float lo,
                               float hi, int zero_point, void *out,
                               const lq_rounding *rounding, int64_t index, int64_t index_step,
                               int stream, ptrdiff_t *begin, ptrdiff_t *end)
{
    LQ_BY_CODE(code, lq_quantize_lines, , x, n, scale, lo, hi, zero_point, out, rounding,
               index, index_step, stream, begin, end)
}
LQ_ENTRY int lq_stream_dequantize(int code, const void *q, ptrdiff_t n, float scale,
                                  int zero_point, float *out, ptrdiff_t *begin, ptrdiff_t *end)
{
    LQ_BY_CODE(code, lq_stream_dequantize, , q, n, scale, zero_point, out, begin, end)
}
LQ_ENTRY int lq_quantize_each(int code, const float *x, ptrdiff_t x_row_step, ptrdiff_t rows,
                              ptrdiff_t n, const float *scale, const int32_t *zero_point,
                              ptrdiff_t zero_point_step, int qmin, int qmax, void *out,
                              ptrdiff_t out_row_step, int stream, int rounding_mode)
{
    if (rounding_mode == LQ_HALF_EVEN) {
        LQ_BY_CODE(code, lq_quantize_each, _half_even, x, x_row_step, rows, n, scale,
                   zero_point, zero_point_step, qmin, qmax, out, out_row_step, stream)
    }
    LQ_BY_OTHER_DETERMINISTIC(rounding_mode, code, lq_quantize_each, , x, x_row_step, rows, n,
                              scale, zero_point, zero_point_step, qmin, qmax, out,
                              out_row_step, stream)
}
LQ_ENTRY int lq_dequantize_each(int code, const void *q, ptrdiff_t n, const float *scale,
                                const int32_t *zero_point, ptrdiff_t zero_point_step,
                                float *out, int stream)
{
    LQ_BY_CODE(code, lq_dequantize_each, , q, n, scale, zero_point, zero_point_step, out,
               stream)
}
/* Half to even by the groups of 16 blocks; other modes block by block. */
LQ_ENTRY int lq_quantize_blocks(int code, const float *x, ptrdiff_t n, ptrdiff_t block,
                                const float *scale, ptrdiff_t scale_step,
                                const int32_t *zero_point, ptrdiff_t zero_point_step, int qmin,
                                int qmax, void *out, int stream, int rounding_mode)
{
    if (rounding_mode == LQ_HALF_EVEN) {
        LQ_BY_CODE(code, lq_quantize_blocks, , x, n, block, scale, scale_step, zero_point,
                   zero_point_step, qmin, qmax, out, stream)
    }
    LQ_BY_OTHER_DETERMINISTIC(rounding_mode, code, lq_quantize_blocks_any, , x, n, block, scale,
                              scale_step, zero_point, zero_point_step, qmin, qmax, out, stream)
}
LQ_ENTRY int lq_quantize_blocks_zcode(int code, const float *x, ptrdiff_t n, ptrdiff_t block,
                                      const float *scale, ptrdiff_t scale_step,
                                      const void *zero_point, ptrdiff_t zero_point_step,
                                      int qmin, int qmax, void *out, int stream,
                                      int rounding_mode)
{
    if (rounding_mode == LQ_HALF_EVEN) {
        LQ_BY_CODE(code, lq_quantize_blocks, _zcode, x, n, block, scale, scale_step, zero_point,
                   zero_point_step, qmin, qmax, out, stream)
    }
    LQ_BY_OTHER_DETERMINISTIC(rounding_mode, code, lq_quantize_blocks_any, _zcode, x, n, block,
                              scale, scale_step, zero_point, zero_point_step, qmin, qmax, out,
                              stream)
}
/* Half to even by the groups of 16 blocks; other modes block by block. */
LQ_ENTRY int lq_block_dynamic(int code, const float *x, ptrdiff_t n, ptrdiff_t block, int bits,
                              int is_signed, int include_zero, int qmin, int qmax, float *scale,
                              ptrdiff_t scale_step, int32_t *zero_point,
                              ptrdiff_t zero_point_step, void *out, int stream,
                              int rounding_mode)
{
    if (rounding_mode == LQ_HALF_EVEN) {
        LQ_BY_CODE(code, lq_block_dynamic, , x, n, block, bits, is_signed, include_zero, qmin,
                   qmax, scale, scale_step, zero_point, zero_point_step, out, stream)
    }
    LQ_BY_OTHER_DETERMINISTIC(rounding_mode, code, lq_block_dynamic_any, , x, n, block, bits,
                              is_signed, include_zero, qmin, qmax, scale, scale_step,
                              zero_point, zero_point_step, out, stream)
}
static inline void lq_stream_fence(void) { _mm_sfence(); }
#else
static inline int lq_quantize_lines(int code, const float *x, ptrdiff_t n, float scale,
                                    float lo, float hi, int zero_point, void *out,
                                    const lq_rounding *rounding, int64_t index,
                                    int64_t index_step, int stream, ptrdiff_t *begin,
                                    ptrdiff_t *end)
{
    (void)code, (void)x, (void)n, (void)scale, (void)lo, (void)hi, (void)zero_point, (void)out;
    (void)rounding, (void)index, (void)index_step, (void)stream;
    *begin = *end = 0;
    return 0;
}
static inline int lq_stream_dequantize(int code, const void *q, ptrdiff_t n, float scale,
                                       int zero_point, float *out, ptrdiff_t *begin,
                                       ptrdiff_t *end)
{
    (void)code, (void)q, (void)n, (void)scale, (void)zero_point, (void)out;
    *begin = *end = 0;
    return 0;
}
static inline int lq_quantize_each(int code, const float *x, ptrdiff_t x_row_step,
                                   ptrdiff_t rows, ptrdiff_t n, const float *scale,
                                   const int32_t *zero_point, ptrdiff_t zero_point_step,
                                   int qmin, int qmax, void *out, ptrdiff_t out_row_step,
                                   int stream, int rounding_mode)
{
    (void)code, (void)x, (void)x_row_step, (void)rows, (void)n, (void)scale, (void)zero_point;
    (void)zero_point_step, (void)qmin, (void)qmax, (void)out, (void)out_row_step, (void)stream;
    (void)rounding_mode;
    return -1;
}
static inline int lq_dequantize_each(int code, const void *q, ptrdiff_t n, const float *scale,
                                     const int32_t *zero_point, ptrdiff_t zero_point_step,
                                     float *out, int stream)
{
    (void)code, (void)q, (void)n, (void)scale, (void)zero_point, (void)zero_point_step;
    (void)out, (void)stream;
    return -1;
}
static inline int lq_quantize_blocks(int code, const float *x, ptrdiff_t n, ptrdiff_t block,
                                     const float *scale, ptrdiff_t scale_step,
                                     const int32_t *zero_point, ptrdiff_t zero_point_step,
                                     int qmin, int qmax, void *out, int stream,
                                     int rounding_mode)
{
    (void)code, (void)x, (void)n, (void)block, (void)scale, (void)scale_step, (void)zero_point;
    (void)zero_point_step, (void)qmin, (void)qmax, (void)out, (void)stream, (void)rounding_mode;
    return -1;
}
static inline int lq_quantize_blocks_zcode(int code, const float *x, ptrdiff_t n,
                                           ptrdiff_t block, const float *scale,
                                           ptrdiff_t scale_step, const void *zero_point,
                                           ptrdiff_t zero_point_step, int qmin, int qmax,
                                           void *out, int stream, int rounding_mode)
{
    (void)code, (void)x, (void)n, (void)block, (void)scale, (void)scale_step, (void)zero_point;
    (void)zero_point_step, (void)qmin, (void)qmax, (void)out, (void)stream, (void)rounding_mode;
    return -1;
}
static inline int lq_block_dynamic(int code, const float *x, ptrdiff_t n, ptrdiff_t block,
                                   int bits, int is_signed, int include_zero, int qmin, int qmax,
                                   float *scale, ptrdiff_t scale_step, int32_t *zero_point,
                                   ptrdiff_t zero_point_step, void *out, int stream,
                                   int rounding_mode)
{
    (void)rounding_mode;
    (void)code, (void)x, (void)n, (void)block, (void)bits, (void)is_signed, (void)include_zero;
    (void)qmin, (void)qmax, (void)scale, (void)scale_step, (void)zero_point;
    (void)zero_point_step, (void)out, (void)stream;
    return -1;
}
static inline void lq_stream_fence(void) {}
#endif

#endif /* LINQUANT_LQ_KERNELS_H */
