// The parts of the fine-grained matching score `s(a, b) = Σ_p w_p cos(a_p, b_p)` around its
// GEMMs (src/backend/cuda/cosine.rs): scaling each `d`-part to unit norm, and the backward
// through that scaling.
#include "common.cuh"

// Grid (rows, parts). `out, x: [rows × parts·d]`, `norms: [rows × parts]`, `weights: [parts]`
// or null (all 1): `out_p = x_p · w_p / ‖x_p‖` (a zero part stays zero).
extern "C" __global__ void normalize_parts(float* out, float* norms, const float* x, const float* weights, int d) {
    __shared__ float scratch[32];
    int parts = gridDim.y, p = blockIdx.y;
    size_t base = ((size_t)blockIdx.x * parts + p) * d;
    float sq = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) sq += x[base + c] * x[base + c];
    float norm = sqrtf(block_sum(sq, scratch));
    float w = weights ? weights[p] : 1.0f;
    float scale = norm > 0.0f ? w / norm : 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) out[base + c] = x[base + c] * scale;
    if (threadIdx.x == 0) norms[(size_t)blockIdx.x * parts + p] = norm;
}

// Grid (rows, parts). With `â` the unit parts of `a`, `G = d_scores · b̂` (a GEMM):
// `da_p += w_p (G_p − â_p (â_p · G_p)) / ‖a_p‖`; zero parts get nothing.
// `da, unit, g: [rows × parts·d]`, `norms: [rows × parts]`, `weights: [parts]`.
extern "C" __global__ void cosine_parts_backward(float* da, const float* unit, const float* g, const float* norms, const float* weights, int d) {
    __shared__ float scratch[32];
    int parts = gridDim.y, p = blockIdx.y;
    size_t base = ((size_t)blockIdx.x * parts + p) * d;
    float norm = norms[(size_t)blockIdx.x * parts + p];
    float part = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) part += unit[base + c] * g[base + c];
    float proj = block_sum(part, scratch);
    if (norm > 0.0f) {
        float k = weights[p] / norm;
        for (int c = threadIdx.x; c < d; c += blockDim.x) da[base + c] += k * (g[base + c] - unit[base + c] * proj);
    }
}
