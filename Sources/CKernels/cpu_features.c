// CPU identification for choosing OpenBLAS's kernel: cpuid leaves 0, 1, 7 and the brand string,
// and xgetbv for what the operating system saves on a context switch (AVX needs YMM state,
// AVX-512 needs ZMM and opmask state as well).
#include "pointwise_kernels.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t st_xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

int st_cpu_features(struct st_cpu_features *out) {
    memset(out, 0, sizeof *out);
    unsigned int a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    unsigned int maxLeaf = a;
    memcpy(out->vendor + 0, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);
    out->vendor[12] = 0;
    __get_cpuid(1, &a, &b, &c, &d);
    unsigned int base = (a >> 8) & 0xf, extended = (a >> 20) & 0xff;
    out->family = (int)(base == 0xf ? base + extended : base);
    out->model = (int)(((a >> 4) & 0xf) | ((base == 6 || base == 0xf) ? ((a >> 12) & 0xf0) : 0));
    out->fma = (c >> 12) & 1;
    out->avx = (c >> 28) & 1;
    int osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? st_xgetbv0() : 0;
    out->os_avx = osxsave && (xcr0 & 0x6) == 0x6;
    out->os_avx512 = out->os_avx && (xcr0 & 0xe0) == 0xe0;
    if (maxLeaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        out->avx2 = (b >> 5) & 1;
        out->avx512f = (b >> 16) & 1;
        out->avx512dq = (b >> 17) & 1;
        out->avx512bw = (b >> 30) & 1;
        out->avx512vl = (b >> 31) & 1;
        out->amx = (d >> 24) & 1;
        unsigned int subleaves = a;
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            out->avx512bf16 = (a >> 5) & 1;
        }
    }
    __get_cpuid(0x80000000, &a, &b, &c, &d);
    if (a >= 0x80000004) {
        unsigned int *brand = (unsigned int *)out->brand;
        for (unsigned int leaf = 0; leaf < 3; leaf++) {
            __get_cpuid(0x80000002 + leaf, &brand[4 * leaf], &brand[4 * leaf + 1], &brand[4 * leaf + 2], &brand[4 * leaf + 3]);
        }
        out->brand[48] = 0;
    }
    return 1;
}
#else
int st_cpu_features(struct st_cpu_features *out) {
    memset(out, 0, sizeof *out);
    return 0;
}
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
void st_flush_denormals(void) {
    // FTZ (bit 15) and DAZ (bit 6): results and inputs below FLT_MIN become zero. Gradients that
    // decay through hundreds of recurrent steps otherwise end in denormals, which x86 cores handle
    // a hundred times slower than normal floats.
    _mm_setcsr(_mm_getcsr() | 0x8040);
}
#else
void st_flush_denormals(void) {}
#endif
