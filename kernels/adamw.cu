// One AdamW step on one parameter tensor, as train/adamw.rs applies it (torch.optim.AdamW):
// `p ← p·decay; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; p ← p − step · m / (√v / bias2 + eps)`
// with `decay = 1 − lr·wd`, `step = lr / (1 − β1^k)`, `bias2 = √(1 − β2^k)` computed by the
// launcher in f64 as the CPU optimizer does.
#include "common.cuh"

// `p, m, v, g: [n]`. Grid-stride.
extern "C" __global__ void adamw_step(float* p, float* m, float* v, const float* g, long long n, float beta1, float beta2, float eps, float decay,
                                      float step_size, float bias2_sqrt) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bias2_sqrt + eps);
        m[i] = mi;
        v[i] = vi;
    }
}
