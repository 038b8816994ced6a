/*
 * CPU feature detection: which kernel build this CPU can run.
 */
#ifndef LINQUANT_LQ_CPU_H
#define LINQUANT_LQ_CPU_H

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

#endif /* LINQUANT_LQ_CPU_H */
