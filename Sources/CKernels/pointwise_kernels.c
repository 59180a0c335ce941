// Bulk transcendental passes (gates of other layers, softmax).
#include "pointwise_kernels.h"
#include "fast_math.h"

CLONES void st_sigmoid_inplace(float *restrict x, int64_t n) {
    VECTORIZE for (int64_t i = 0; i < n; i++) x[i] = sigmoid_fast(x[i]);
}

CLONES void st_tanh(float *y, const float *x, int64_t n) {
    VECTORIZE for (int64_t i = 0; i < n; i++) y[i] = tanh_fast(x[i]);
}

CLONES void st_exp_shifted(float *y, const float *x, float shift, int64_t n) {
    VECTORIZE for (int64_t i = 0; i < n; i++) y[i] = exp_fast(x[i] - shift);
}
