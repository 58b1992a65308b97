// LayerNorm over the last dimension, `y = (x − mean) · rstd · γ + β`, `rstd = 1/sqrt(var + eps)`
// (two-pass mean and variance, as the CPU op and PyTorch compute them).
#include "common.cuh"

// One block per row. `y, x: [rows × d]` (`y` may be `x`: in place), `gamma, beta: [d]`;
// `mean, rstd: [rows]` are saved for the backward pass unless null (inference).
extern "C" __global__ void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta, int rows,
                                             int d, float eps) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    const float* xr = x + (size_t)r * d;
    float s = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) s += xr[c];
    float mu = block_sum(s, scratch) / (float)d;
    float v = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) v += (xr[c] - mu) * (xr[c] - mu);
    float inv = 1.0f / sqrtf(block_sum(v, scratch) / (float)d + eps);
    float* yr = y + (size_t)r * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) yr[c] = (xr[c] - mu) * inv * gamma[c] + beta[c];
    if (threadIdx.x == 0 && mean) {
        mean[r] = mu;
        rstd[r] = inv;
    }
}

// Backward, accumulating (`+=`). With x̂ = (x − μ)·r and g = dy ⊙ γ per row:
// dx += r · (g − mean(g) − x̂ · mean(g ⊙ x̂)); dγ += Σ_rows dy ⊙ x̂; dβ += Σ_rows dy.
// `x, dy, dx: [rows × d]`, `mean, rstd: [rows]`, `gamma, dgamma, dbeta: [d]`.
// Each block takes rows blockIdx.x, blockIdx.x + gridDim.x, …, sums its share of dγ and dβ
// in dynamic shared memory (`2·d` floats) and adds it to the global sums with atomics.
extern "C" __global__ void layernorm_backward(float* dx, float* dgamma, float* dbeta, const float* x, const float* dy, const float* gamma,
                                              const float* mean, const float* rstd, int rows, int d) {
    __shared__ float scratch[32];
    RMX_DYNAMIC_SHARED(float, acc);
    float* dg = acc;
    float* db = acc + d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) dg[c] = db[c] = 0.0f;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + (size_t)r * d;
        const float* dyr = dy + (size_t)r * d;
        float mu = mean[r], rs = rstd[r];
        float sg = 0.0f, sgx = 0.0f;
        for (int c = threadIdx.x; c < d; c += blockDim.x) {
            float g = dyr[c] * gamma[c];
            sg += g;
            sgx += g * (xr[c] - mu) * rs;
        }
        float mean_g = block_sum(sg, scratch) / (float)d;
        float mean_gx = block_sum(sgx, scratch) / (float)d;
        float* dxr = dx + (size_t)r * d;
        for (int c = threadIdx.x; c < d; c += blockDim.x) {
            float xh = (xr[c] - mu) * rs;
            dxr[c] += rs * (dyr[c] * gamma[c] - mean_g - xh * mean_gx);
            dg[c] += dyr[c] * xh;
            db[c] += dyr[c];
        }
    }
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        atomicAdd(&dgamma[c], dg[c]);
        atomicAdd(&dbeta[c], db[c]);
    }
}
