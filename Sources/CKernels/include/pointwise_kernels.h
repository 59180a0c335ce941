// Bulk transcendental passes for the hot loops (gates, cell states, softmax), in C so that one
// binary carries an AVX2 clone and a baseline one, picked at load time for the CPU it runs on.
#ifndef SEQTRAIN_POINTWISE_KERNELS_H
#define SEQTRAIN_POINTWISE_KERNELS_H
#include <stdint.h>

/// x[i] = 1 / (1 + e^-x[i]) for n values.
void st_sigmoid_inplace(float *x, int64_t n);
/// y[i] = tanh(x[i]) for n values; y may equal x.
void st_tanh(float *y, const float *x, int64_t n);
/// y[i] = e^(x[i] - shift) for n values; y may equal x.
void st_exp_shifted(float *y, const float *x, float shift, int64_t n);

/// What cpuid and xgetbv say about this CPU (all zero off x86).
struct st_cpu_features {
    char vendor[13];   // "GenuineIntel", "AuthenticAMD", ...
    char brand[49];    // the processor's brand string
    int family, model; // display family and model
    int avx, avx2, fma, avx512f, avx512dq, avx512bw, avx512vl, avx512bf16, amx;
    int os_avx, os_avx512; // the OS saves YMM (and ZMM/opmask) state
};
/// Fills `out`; returns 0 where cpuid is not available.
int st_cpu_features(struct st_cpu_features *out);

/// Flushes denormal floats to zero in this thread (FTZ and DAZ on x86).
void st_flush_denormals(void);

#endif
