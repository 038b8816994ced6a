// Exhaustive check of the division-free quotient of lq_kernels.h (lq_quotient16) over all float32
// significand pairs (a, b in [1, 2), 2**46 pairs):
//   r = RN(1/b); q0 = RN(a*r); e = RN(a - q0*b) (fma); q1 = RN(q0 + e*r) (fma)
// against a correctly rounded division, RN(a/b). Prints the pairs where q1 differs (none) and
// how many q0 alone gets wrong (about a quarter: the check can fail).
//
//   nvcc -O3 -arch=sm_90 -o check_quotient scripts/check_quotient.cu && ./check_quotient
//
// takes about 61 s on an H200; ./check_quotient FIRST COUNT checks the divisors'
// significands [FIRST, FIRST + COUNT) only.
#include <cstdio>
#include <cstdint>
#include <cstring>
__device__ unsigned long long bad_q1 = 0, bad_q0 = 0, done = 0;
__device__ uint32_t first_bad[64];
__global__ void check(uint32_t b_begin, uint32_t b_count) {
  uint32_t bi = b_begin + blockIdx.x;
  if (bi >= b_begin + b_count) return;
  float b = __uint_as_float(0x3f800000u | bi);
  float r = __frcp_rn(b);
  unsigned long long n1 = 0, n0 = 0;
  for (uint32_t ai = threadIdx.x; ai < (1u << 23); ai += blockDim.x) {
    float a = __uint_as_float(0x3f800000u | ai);
    float q0 = __fmul_rn(a, r);
    float e = __fmaf_rn(-q0, b, a);
    float q1 = __fmaf_rn(e, r, q0);
    float ref = __fdiv_rn(a, b);
    if (__float_as_uint(q1) != __float_as_uint(ref)) {
      unsigned long long k = atomicAdd(&bad_q1, 1ull);
      if (k < 32) { first_bad[2 * k] = ai; first_bad[2 * k + 1] = bi; }
      n1++;
    }
    n0 += (__float_as_uint(q0) != __float_as_uint(ref));
  }
  atomicAdd(&bad_q0, n0);
  if (threadIdx.x == 0) atomicAdd(&done, 1ull);
}
int main(int argc, char **argv) {
  uint32_t begin = argc > 1 ? strtoul(argv[1], 0, 0) : 0;
  uint32_t count = argc > 2 ? strtoul(argv[2], 0, 0) : (1u << 23);
  uint32_t chunk = 1u << 16;
  cudaEvent_t t0, t1; cudaEventCreate(&t0); cudaEventCreate(&t1); cudaEventRecord(t0);
  for (uint32_t s = begin; s < begin + count; s += chunk) {
    uint32_t c = (begin + count - s) < chunk ? (begin + count - s) : chunk;
    check<<<c, 1024>>>(s, c);
  }
  cudaError_t err = cudaDeviceSynchronize();
  cudaEventRecord(t1); cudaEventSynchronize(t1); float ms; cudaEventElapsedTime(&ms, t0, t1);
  unsigned long long h1, h0, hd; uint32_t fb[64];
  cudaMemcpyFromSymbol(&h1, bad_q1, 8); cudaMemcpyFromSymbol(&h0, bad_q0, 8); cudaMemcpyFromSymbol(&hd, done, 8);
  cudaMemcpyFromSymbol(fb, first_bad, sizeof fb);
  printf("err=%s b=[%u,+%u) blocks done=%llu pairs=%llu  q1 mismatches=%llu  q0 mismatches=%llu  %.1f s\n",
         cudaGetErrorString(err), begin, count, hd, hd << 23, h1, h0, ms / 1e3);
  for (unsigned k = 0; k < (h1 < 32 ? h1 : 32); k++) {
    float a, b; uint32_t ua = 0x3f800000u | fb[2*k], ub = 0x3f800000u | fb[2*k+1];
    memcpy(&a, &ua, 4); memcpy(&b, &ub, 4);
    printf("  a=%a b=%a\n", a, b);
  }
  return err != cudaSuccess;
}
