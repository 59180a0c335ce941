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

// One recurrent step's pointwise work, fused (recurrent_kernels.c). Legend: B batch, H hidden.

/// LSTM: gates (B, 4H) pre-activations i, f, g, o in, activated out; c_next (B, H) ← f c_prev + i g;
/// tanh_c ← tanh(c_next); h_next ← o tanh_c.
void st_lstm_forward_step(float *gates, const float *c_prev, float *c_next, float *tanh_c, float *h_next,
                          int64_t batch, int64_t hidden);
/// LSTM backward of one step: dh, dc (B, H) carry the gradient of the next state in and of this
/// step's input state out; d_out (B, H) the gradient of this step's output; d_gates (B, 4H) out.
void st_lstm_backward_step(const float *gates, const float *c_prev, const float *tanh_c, const float *d_out,
                           float *dh, float *dc, float *d_gates, int64_t batch, int64_t hidden);
/// GRU: gates (B, 3H) input parts of r, z, n in, activated out; recurrent (B, 3H) = h W_hhᵀ + b_hh;
/// h_next ← (1 − z) n + z h_prev; recurrent_n (B, H) keeps W_hn h + b_hn for backward.
void st_gru_forward_step(float *gates, const float *recurrent, const float *h_prev, float *h_next, float *recurrent_n,
                         int64_t batch, int64_t hidden);
/// GRU backward of one step: dh (B, H) in and out (the z part; the caller adds the W_hh product);
/// d_input_gates (B, 3H) as seen by W_ih, d_recurrent_gates (B, 3H) as seen by W_hh.
void st_gru_backward_step(const float *gates, const float *h_prev, const float *recurrent_n, const float *d_out,
                          float *dh, float *d_input_gates, float *d_recurrent_gates, int64_t batch, int64_t hidden);

/// Adam and AdamW over n parameters (optimizer_kernels.c): with w = p·shrink (AdamW's decoupled
/// decay; 1 for Adam) and d = g·gradient_scale + l2·w (Adam's L2 term; 0 for AdamW):
/// m ← m + (d − m)(1 − β1), v ← β2 v + (1 − β2) d², p ← w − step_size · m / (√v / bc2_root + eps).
void st_adam_update(float *p, const float *g, float *m, float *v, int64_t n, float gradient_scale, float l2, float shrink,
                    float beta1, float beta2, float step_size, float bc2_root, float eps);

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

/// CRC-32 (IEEE, as zlib's crc32) of count bytes, continuing from crc (0 to start) (checksum.c).
uint32_t st_crc32(uint32_t crc, const uint8_t *bytes, int64_t count);
/// CRC-32C (Castagnoli) of count bytes, continuing from crc (0 to start).
uint32_t st_crc32c(uint32_t crc, const uint8_t *bytes, int64_t count);

#endif
