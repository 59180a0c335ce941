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

#endif
