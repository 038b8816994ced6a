/*
 * The AVX-512 kernels of lq_kernels.h called straight from C, for bench_cache.py: `reps` calls
 * on the same n float32 values, so that n picks where the input comes from (L1, L2, memory)
 * without Python's per-call cost. out must be 64-byte aligned and n a multiple of 64 (no
 * scalar head or tail here).
 */
#include "../src/linquant/_c/lq_kernels.h"

/* quantize_linear per tensor, uint8 codes: the fast form with bounds lo = qmin - zero_point,
   hi = qmax - zero_point, as _kernels.pxi gives them. Returns nonzero for a NaN. */
int per_tensor_u8(const float *x, ptrdiff_t reps, ptrdiff_t n, float scale, int zero_point,
                  uint8_t *out)
{
    const float lo = (float)(0 - zero_point), hi = (float)(255 - zero_point);
    ptrdiff_t k, begin, end; /* the line-aligned span, set by the kernel: all of out here */
    lq_rounding half_even;
    int nan = 0;
    lq_rounding_init(&half_even, LQ_HALF_EVEN, 0);
    for (k = 0; k < reps; k++)
        nan |= lq_quantize_lines(LQ_U8, x, n, scale, lo, hi, zero_point, out, &half_even, 0, 1,
                                 1, &begin, &end);
    lq_stream_fence();
    return nan;
}

/* quantize(), asymmetric uint8 in blocks: SPEC §4 per block, then its codes. Returns nonzero
   where the kernel hands the run back (a NaN, parameters out of the fast form). */
int dynamic_blocks_u8(const float *x, ptrdiff_t reps, ptrdiff_t n, ptrdiff_t block,
                      float *scale, int32_t *zero_point, uint8_t *out)
{
    ptrdiff_t k;
    int bad = 0;
    for (k = 0; k < reps; k++)
        bad |= lq_block_dynamic_u8(x, n, block, 8, 0, 1, 0, 255, scale, 1, zero_point, 1, out,
                                   1);
    lq_stream_fence();
    return bad;
}

/* quantize_linear in blocks with given scales and uint8 zero points (ONNX's). */
int given_blocks_u8(const float *x, ptrdiff_t reps, ptrdiff_t n, ptrdiff_t block,
                    const float *scale, const uint8_t *zero_point, uint8_t *out)
{
    ptrdiff_t k;
    int bad = 0;
    for (k = 0; k < reps; k++)
        bad |= lq_quantize_blocks_u8_zcode(x, n, block, scale, 1, zero_point, 1, 0, 255, out, 1);
    lq_stream_fence();
    return bad;
}
