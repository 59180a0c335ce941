// The optimizer's pass over the arenas, in C for the vector clones (Optimizers/Optimizer.swift has
// the formulas and the other optimizers).
#include "pointwise_kernels.h"
#include "fast_math.h"

CLONES void st_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t n,
        float gradient_scale, float l2, float shrink, float beta1, float beta2, float step_size, float bc2_root, float eps) {
    VECTORIZE for (int64_t i = 0; i < n; i++) {
        float w = p[i] * shrink;
        float d = g[i] * gradient_scale + l2 * w;
        float mi = m[i] + (d - m[i]) * (1.0f - beta1);
        float vi = beta2 * v[i] + (1.0f - beta2) * d * d;
        m[i] = mi;
        v[i] = vi;
        p[i] = w - step_size * mi / (sqrt_fast(vi) / bc2_root + eps);
    }
}
