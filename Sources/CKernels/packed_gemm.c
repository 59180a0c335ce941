// C ← (C +) A · op(B) against an op(B) packed once into column panels (see packed_gemm.h).
//
// The kernels hold a block of MR rows × NR columns of C in registers and walk k, loading one row
// of the panel (NR floats) and broadcasting one element of A per row: AVX-512 with 8 × 32 (16
// accumulators), AVX2 + FMA with 6 × 16 (12 accumulators), and plain C for other CPUs. Panels
// are the outer loop, so one panel (K × NR floats) stays in cache for every block of rows.
#include "packed_gemm.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
static int isa = ISA_GENERIC;

__attribute__((constructor)) static void choose_isa(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) isa = ISA_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = ISA_AVX2;
#endif
}

int64_t st_packed_panel_width(void) { return isa == ISA_AVX512 ? 32 : 16; }

int64_t st_packed_size(int64_t k, int64_t n) {
    int64_t nr = st_packed_panel_width();
    return (n + nr - 1) / nr * nr * k;
}

void st_pack_b(float *packed, const float *b, int64_t ldb, int transposed, int64_t k, int64_t n) {
    const int64_t nr = st_packed_panel_width(), panels = (n + nr - 1) / nr;
    for (int64_t p = 0; p < panels; p++) {
        float *panel = packed + p * k * nr;
        const int64_t j0 = p * nr, cols = n - j0 < nr ? n - j0 : nr;
        if (!transposed) {
            for (int64_t kk = 0; kk < k; kk++) {
                memcpy(panel + kk * nr, b + kk * ldb + j0, (size_t)cols * sizeof(float));
                for (int64_t c = cols; c < nr; c++) panel[kk * nr + c] = 0;
            }
        } else {
            // b is (N, K): read each of its rows once, write a column of the panel.
            for (int64_t c = 0; c < nr; c++) {
                if (c < cols) {
                    const float *row = b + (j0 + c) * ldb;
                    for (int64_t kk = 0; kk < k; kk++) panel[kk * nr + c] = row[kk];
                } else {
                    for (int64_t kk = 0; kk < k; kk++) panel[kk * nr + c] = 0;
                }
            }
        }
    }
}

// The loop of a product: panels of NR columns outside, so a panel stays in cache for every block
// of rows; blocks of at most MR rows, as even as possible (25 rows in blocks of 8: 7, 6, 6, 6).
#define PANELS_AND_BLOCKS(NR, MR, ROWS)                                                        \
    for (int64_t j0 = 0; j0 < n; j0 += NR) {                                                   \
        const float *panel = packed + j0 * k;                                                  \
        const int64_t cols = n - j0 < NR ? n - j0 : NR;                                        \
        const int64_t blocks = (m + MR - 1) / MR;                                              \
        for (int64_t q = 0, r0 = 0; q < blocks; q++) {                                         \
            const int64_t rows = m / blocks + (q < m % blocks ? 1 : 0);                        \
            ROWS(rows, c + r0 * ldc + j0, ldc, a + r0 * lda, lda, panel, k, cols, accumulate); \
            r0 += rows;                                                                        \
        }                                                                                      \
    }

#if defined(__x86_64__)
// MR rows × 32 columns of C; `cols` (1..32) of them valid. Inlined with MR constant, so the
// accumulators live in registers.
#define AVX512 __attribute__((target("avx512f"), always_inline)) static inline
AVX512 void block_avx512(const int MR, float *c, int64_t ldc, const float *a, int64_t lda, const float *panel,
                         int64_t k, int64_t cols, int accumulate) {
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 s0[8], s1[8];
    for (int r = 0; r < MR; r++) {
        s0[r] = accumulate ? _mm512_maskz_loadu_ps(m0, c + r * ldc) : _mm512_setzero_ps();
        s1[r] = accumulate ? _mm512_maskz_loadu_ps(m1, c + r * ldc + 16) : _mm512_setzero_ps();
    }
    for (int64_t kk = 0; kk < k; kk++) {
        const __m512 b0 = _mm512_load_ps(panel + kk * 32), b1 = _mm512_load_ps(panel + kk * 32 + 16);
        for (int r = 0; r < MR; r++) {
            const __m512 x = _mm512_set1_ps(a[r * lda + kk]);
            s0[r] = _mm512_fmadd_ps(x, b0, s0[r]);
            s1[r] = _mm512_fmadd_ps(x, b1, s1[r]);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, m0, s0[r]);
        _mm512_mask_storeu_ps(c + r * ldc + 16, m1, s1[r]);
    }
}

// A block of `rows` (1..8) with the kernel compiled for that many rows.
AVX512 void rows_avx512(int64_t rows, float *c, int64_t ldc, const float *a, int64_t lda, const float *panel,
                        int64_t k, int64_t cols, int accumulate) {
    switch (rows) {
    case 8: block_avx512(8, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 7: block_avx512(7, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 6: block_avx512(6, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 5: block_avx512(5, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 4: block_avx512(4, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 3: block_avx512(3, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 2: block_avx512(2, c, ldc, a, lda, panel, k, cols, accumulate); break;
    default: block_avx512(1, c, ldc, a, lda, panel, k, cols, accumulate); break;
    }
}

__attribute__((target("avx512f"))) static void gemm_avx512(float *c, int64_t ldc, const float *a, int64_t lda, const float *packed,
                                                         int64_t m, int64_t n, int64_t k, int accumulate) {
    PANELS_AND_BLOCKS(32, 8, rows_avx512)
}

// MR rows × 16 columns of C with AVX2 + FMA; `cols` (1..16) valid.
#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline
AVX2 __m256i column_mask(int64_t valid) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(valid < 0 ? 0 : valid > 8 ? 8 : valid)), index);
}

AVX2 void block_avx2(const int MR, float *c, int64_t ldc, const float *a, int64_t lda, const float *panel,
                     int64_t k, int64_t cols, int accumulate) {
    const __m256i m0 = column_mask(cols), m1 = column_mask(cols - 8);
    __m256 s0[6], s1[6];
    for (int r = 0; r < MR; r++) {
        s0[r] = accumulate ? _mm256_maskload_ps(c + r * ldc, m0) : _mm256_setzero_ps();
        s1[r] = accumulate ? _mm256_maskload_ps(c + r * ldc + 8, m1) : _mm256_setzero_ps();
    }
    for (int64_t kk = 0; kk < k; kk++) {
        const __m256 b0 = _mm256_load_ps(panel + kk * 16), b1 = _mm256_load_ps(panel + kk * 16 + 8);
        for (int r = 0; r < MR; r++) {
            const __m256 x = _mm256_broadcast_ss(a + r * lda + kk);
            s0[r] = _mm256_fmadd_ps(x, b0, s0[r]);
            s1[r] = _mm256_fmadd_ps(x, b1, s1[r]);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm256_maskstore_ps(c + r * ldc, m0, s0[r]);
        _mm256_maskstore_ps(c + r * ldc + 8, m1, s1[r]);
    }
}

AVX2 void rows_avx2(int64_t rows, float *c, int64_t ldc, const float *a, int64_t lda, const float *panel,
                    int64_t k, int64_t cols, int accumulate) {
    switch (rows) {
    case 6: block_avx2(6, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 5: block_avx2(5, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 4: block_avx2(4, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 3: block_avx2(3, c, ldc, a, lda, panel, k, cols, accumulate); break;
    case 2: block_avx2(2, c, ldc, a, lda, panel, k, cols, accumulate); break;
    default: block_avx2(1, c, ldc, a, lda, panel, k, cols, accumulate); break;
    }
}

__attribute__((target("avx2,fma"))) static void gemm_avx2(float *c, int64_t ldc, const float *a, int64_t lda, const float *packed,
                                                        int64_t m, int64_t n, int64_t k, int accumulate) {
    PANELS_AND_BLOCKS(16, 6, rows_avx2)
}
#endif

static void gemm_generic(float *c, int64_t ldc, const float *a, int64_t lda, const float *packed,
                         int64_t m, int64_t n, int64_t k, int accumulate) {
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const float *panel = packed + j0 * k;
        const int64_t cols = n - j0 < 16 ? n - j0 : 16;
        for (int64_t r = 0; r < m; r++) {
            float s[16];
            for (int64_t j = 0; j < 16; j++) s[j] = accumulate && j < cols ? c[r * ldc + j0 + j] : 0.0f;
            for (int64_t kk = 0; kk < k; kk++) {
                const float x = a[r * lda + kk];
                for (int64_t j = 0; j < 16; j++) s[j] += x * panel[kk * 16 + j];
            }
            for (int64_t j = 0; j < cols; j++) c[r * ldc + j0 + j] = s[j];
        }
    }
}

void st_gemm_packed(float *c, int64_t ldc, const float *a, int64_t lda, const float *packed,
                    int64_t m, int64_t n, int64_t k, int accumulate) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate) for (int64_t r = 0; r < m; r++) memset(c + r * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
#if defined(__x86_64__)
    if (isa == ISA_AVX512) { gemm_avx512(c, ldc, a, lda, packed, m, n, k, accumulate); return; }
    if (isa == ISA_AVX2) { gemm_avx2(c, ldc, a, lda, packed, m, n, k, accumulate); return; }
#endif
    gemm_generic(c, ldc, a, lda, packed, m, n, k, accumulate);
}

int st_packed_gemm_force(int chosen) {
    int previous = isa;
#if defined(__x86_64__)
    if (chosen == ISA_AVX512 && !__builtin_cpu_supports("avx512f")) return -1;
    if (chosen == ISA_AVX2 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return -1;
#else
    if (chosen != ISA_GENERIC) return -1;
#endif
    if (chosen < ISA_GENERIC || chosen > ISA_AVX512) return -1;
    isa = chosen;
    return previous;
}
