// The pointwise part of one recurrent step, fused into one pass over the step's (B, ·) block, in C
// so that one binary carries AVX-512, AVX2+FMA and baseline clones, picked at load time for the CPU.
// The time loops, the sgemms and the shapes stay in Layers/LSTM.swift and Layers/GRU.swift.
#include "pointwise_kernels.h"
#include "fast_math.h"

CLONES void st_lstm_forward_step(float *restrict gates, const float *restrict c_prev, float *restrict c_next,
        float *restrict tanh_c, float *restrict h_next, int64_t batch, int64_t hidden) {
    const int64_t H = hidden, G = 4 * hidden;
    for (int64_t b = 0; b < batch; b++) {
        float *restrict gi = gates + b * G, *restrict gf = gi + H, *restrict gg = gi + 2 * H, *restrict go = gi + 3 * H;
        const float *restrict cp = c_prev + b * H;
        float *restrict cn = c_next + b * H, *restrict tc = tanh_c + b * H, *restrict hn = h_next + b * H;
        VECTORIZE for (int64_t j = 0; j < H; j++) {
            float i = sigmoid_fast(gi[j]), f = sigmoid_fast(gf[j]), g = tanh_fast(gg[j]), o = sigmoid_fast(go[j]);
            float c = f * cp[j] + i * g;
            float t = tanh_fast(c);
            gi[j] = i; gf[j] = f; gg[j] = g; go[j] = o;
            cn[j] = c;
            tc[j] = t;
            hn[j] = o * t;
        }
    }
}

CLONES void st_lstm_backward_step(const float *restrict gates, const float *restrict c_prev, const float *restrict tanh_c,
        const float *restrict d_out, float *restrict dh, float *restrict dc,
        float *restrict d_gates, int64_t batch, int64_t hidden) {
    const int64_t H = hidden, G = 4 * hidden;
    for (int64_t b = 0; b < batch; b++) {
        const float *restrict gi = gates + b * G, *restrict gf = gi + H, *restrict gg = gi + 2 * H, *restrict go = gi + 3 * H;
        float *restrict di = d_gates + b * G, *restrict df = di + H, *restrict dg = di + 2 * H, *restrict dO = di + 3 * H;
        const float *restrict cp = c_prev + b * H, *restrict tc = tanh_c + b * H, *restrict dout = d_out + b * H;
        float *restrict dhb = dh + b * H, *restrict dcb = dc + b * H;
        VECTORIZE for (int64_t j = 0; j < H; j++) {
            float dhk = dout[j] + dhb[j];
            float i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tc[j];
            float dck = dcb[j] + dhk * o * (1.0f - t * t);
            di[j] = dck * g * i * (1.0f - i);
            df[j] = dck * cp[j] * f * (1.0f - f);
            dg[j] = dck * i * (1.0f - g * g);
            dO[j] = dhk * t * o * (1.0f - o);
            dcb[j] = dck * f;
        }
    }
}

CLONES void st_gru_forward_step(float *restrict gates, const float *restrict recurrent, const float *restrict h_prev,
        float *restrict h_next, float *restrict recurrent_n, int64_t batch, int64_t hidden) {
    const int64_t H = hidden, G = 3 * hidden;
    for (int64_t b = 0; b < batch; b++) {
        float *restrict gr = gates + b * G, *restrict gz = gr + H, *restrict gn = gr + 2 * H;
        const float *restrict hr = recurrent + b * G, *restrict hz = hr + H, *restrict hnb = hr + 2 * H;
        const float *restrict hp = h_prev + b * H;
        float *restrict hx = h_next + b * H, *restrict hs = recurrent_n + b * H;
        VECTORIZE for (int64_t j = 0; j < H; j++) {
            float r = sigmoid_fast(gr[j] + hr[j]);
            float z = sigmoid_fast(gz[j] + hz[j]);
            float n = tanh_fast(gn[j] + r * hnb[j]);
            gr[j] = r; gz[j] = z; gn[j] = n;
            hs[j] = hnb[j];
            hx[j] = (1.0f - z) * n + z * hp[j];
        }
    }
}

CLONES void st_gru_backward_step(const float *restrict gates, const float *restrict h_prev, const float *restrict recurrent_n,
        const float *restrict d_out, float *restrict dh, float *restrict d_input_gates,
        float *restrict d_recurrent_gates, int64_t batch, int64_t hidden) {
    const int64_t H = hidden, G = 3 * hidden;
    for (int64_t b = 0; b < batch; b++) {
        const float *restrict gr = gates + b * G, *restrict gz = gr + H, *restrict gn = gr + 2 * H;
        float *restrict dxr = d_input_gates + b * G, *restrict dxz = dxr + H, *restrict dxn = dxr + 2 * H;
        float *restrict dhr = d_recurrent_gates + b * G, *restrict dhz = dhr + H, *restrict dhn = dhr + 2 * H;
        const float *restrict dout = d_out + b * H, *restrict hp = h_prev + b * H, *restrict hs = recurrent_n + b * H;
        float *restrict dhb = dh + b * H;
        VECTORIZE for (int64_t j = 0; j < H; j++) {
            float dhk = dout[j] + dhb[j];
            float r = gr[j], z = gz[j], n = gn[j];
            float dn = dhk * (1.0f - z) * (1.0f - n * n);
            float dr = dn * hs[j] * r * (1.0f - r);
            float dz = dhk * (hp[j] - n) * z * (1.0f - z);
            dxr[j] = dr; dxz[j] = dz; dxn[j] = dn;
            dhr[j] = dr; dhz[j] = dz; dhn[j] = dn * r;
            dhb[j] = dhk * z;
        }
    }
}
