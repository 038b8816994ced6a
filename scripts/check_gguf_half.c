// Exhaustive check of the float16 conversions of _c/lq_gguf.h: lq_half_bits and the AVX2
// path's lq_gguf_half_bits8 (float32 to float16, nearest, ties to even) over every finite
// float32, and lq_half_value (float16 to float32) over every float16, against the x86 F16C
// instructions (vcvtps2ph, vcvtph2ps), which the AVX-512 path of lq_gguf.h uses. Prints how
// many differ (none), and how many truncation instead of rounding would get wrong (the check
// can fail).
//
//   gcc -O2 -mavx2 -mf16c -Isrc/linquant/_c -o /tmp/check_gguf_half scripts/check_gguf_half.c && /tmp/check_gguf_half
//
// takes about 10 s on one core. NaNs are compared as NaN: F16C quiets a signaling one, which
// lq_half_value keeps, and the multiplication that uses it quiets it the same way.
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lq_gguf.h"

int main(void)
{
    uint64_t wrong = 0, vector_wrong = 0, truncation_wrong = 0, values_wrong = 0;
    uint32_t bits = 0, h;
    do {
        float f;
        memcpy(&f, &bits, sizeof f);
        if ((bits & 0x7f800000u) != 0x7f800000u) { /* finite */
            uint16_t expected = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            uint16_t truncated = _cvtss_sh(f, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            if (lq_half_bits(f) != expected && wrong++ < 8)
                printf("lq_half_bits(0x%08x) = 0x%04x, not 0x%04x\n", bits, lq_half_bits(f), expected);
            truncation_wrong += truncated != expected;
            vector_wrong += (uint16_t)_mm256_cvtsi256_si32(lq_gguf_half_bits8(_mm256_set1_ps(f))) != expected;
        }
    } while (++bits != 0);
    for (h = 0; h < 65536; h++) {
        float expected = _cvtsh_ss((uint16_t)h), value = lq_half_value((uint16_t)h);
        if (memcmp(&expected, &value, sizeof value) && !(expected != expected && value != value))
            values_wrong++;
    }
    printf("float32 -> float16: %llu differ, %llu in the AVX2 path (truncation: %llu); "
           "float16 -> float32: %llu differ\n",
           (unsigned long long)wrong, (unsigned long long)vector_wrong,
           (unsigned long long)truncation_wrong, (unsigned long long)values_wrong);
    return wrong || vector_wrong || values_wrong;
}
