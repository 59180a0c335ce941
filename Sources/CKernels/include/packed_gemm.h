// Matrix products against a matrix packed once (packed_gemm.c): the recurrent weights of an LSTM
// or GRU layer multiply a small (batch × hidden) block at every time step, and sgemm repacks them
// at every call, which costs as much as the product itself for a small batch. Here the weights
// are packed once per pass over the sequence and every step streams the packed panels.
//
// Legend: C (M, N) row-major with row stride ldc; A (M, K) row-major with row stride lda;
// op(B) (K, N), packed into ceil(N / NR) panels of K × NR floats (the last one padded with zeros),
// NR = st_packed_panel_width() for the instructions this CPU has.
#ifndef SEQTRAIN_PACKED_GEMM_H
#define SEQTRAIN_PACKED_GEMM_H
#include <stdint.h>

/// Columns per panel: 32 with AVX-512, 16 with AVX2 + FMA or without either.
int64_t st_packed_panel_width(void);

/// Floats a packed op(B) of K × N needs.
int64_t st_packed_size(int64_t k, int64_t n);

/// Packs op(B) (K, N): b is (K, N) with row stride ldb, or with `transposed` (N, K) with row
/// stride ldb (then op(B) = bᵀ).
void st_pack_b(float *packed, const float *b, int64_t ldb, int transposed, int64_t k, int64_t n);

/// C ← A · op(B) (accumulate = 0) or C ← C + A · op(B) (accumulate = 1). Every element of C is
/// summed over k in order, by one fused multiply-add chain, so the result does not depend on M or
/// on which rows a call gets.
void st_gemm_packed(float *c, int64_t ldc, const float *a, int64_t lda, const float *packed,
                    int64_t m, int64_t n, int64_t k, int accumulate);

/// Test hook: use the kernels for 0 (plain C), 1 (AVX2 + FMA) or 2 (AVX-512) from now on (pack
/// again afterwards: the panel width follows). Returns the previous choice, or -1 when this CPU
/// cannot run the one asked for.
int st_packed_gemm_force(int isa);

#endif
