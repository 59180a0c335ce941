#include "pointwise_kernels.h"
#include <string.h>

// e^x: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n built in the exponent
// bits. Relative error about 2e-7 on [-87, 88]; inputs are clamped there. Branch-free, so the
// loops below vectorize. Same algorithm as fastExp in Kernels/Pointwise.swift.
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float shifted = x * 1.442695041f + 12582912.0f;
    float n = shifted - 12582912.0f;
    float r = (x - n * 0.693145752f) - n * 1.428606765e-6f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits;
    memcpy(&bits, &shifted, 4);
    bits = (bits - 0x4B400000 + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

// Each iteration reads x[i] and writes y[i] only (y may be x), so the loops are safe to vectorize
// whatever the compiler can prove about the pointers.
#if defined(__clang__)
#define VECTORIZE _Pragma("clang loop vectorize(assume_safety)")
#else
#define VECTORIZE
#endif

#if defined(__x86_64__) && defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define CLONES
#endif

CLONES void st_sigmoid_inplace(float *restrict x, int64_t n) {
    VECTORIZE for (int64_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + exp_approx(-x[i]));
}

CLONES void st_tanh(float *y, const float *x, int64_t n) {
    VECTORIZE for (int64_t i = 0; i < n; i++) y[i] = 2.0f / (1.0f + exp_approx(-2.0f * x[i])) - 1.0f;
}

CLONES void st_exp_shifted(float *y, const float *x, float shift, int64_t n) {
    VECTORIZE for (int64_t i = 0; i < n; i++) y[i] = exp_approx(x[i] - shift);
}
