// Shared by the C kernels: a branch-free e^x (and σ, tanh from it) that vectorizes, and the pragma
// that lets the compiler vectorize loops whose rows never overlap.
#ifndef SEQTRAIN_FAST_MATH_H
#define SEQTRAIN_FAST_MATH_H
#include <stdint.h>
#include <string.h>

// e^x: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n built in the exponent
// bits. Relative error about 2e-7 on [-87, 88]; inputs are clamped there (NaN stays NaN).
// Same algorithm as fastExp in Kernels/Pointwise.swift.
static inline float exp_fast(float x) {
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

// √x without libm's errno path, so loops over it vectorize (sqrtf must set errno for x < 0, which
// keeps the compiler scalar).
static inline float sqrt_fast(float x) {
#if defined(__has_builtin) && __has_builtin(__builtin_elementwise_sqrt)
    return __builtin_elementwise_sqrt(x);
#else
    return __builtin_sqrtf(x);
#endif
}

static inline float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_fast(-x)); }
static inline float tanh_fast(float x) { return 2.0f / (1.0f + exp_fast(-2.0f * x)) - 1.0f; }

// Each iteration of a marked loop touches its own elements only (outputs may be the inputs), so it
// is safe to vectorize whatever the compiler can prove about the pointers.
#if defined(__clang__)
#define VECTORIZE _Pragma("clang loop vectorize(assume_safety) interleave(enable)")
#else
#define VECTORIZE
#endif

// One binary carries AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and baseline versions, picked at load
// time for the CPU.
#if defined(__x86_64__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#endif
