// Feature distillation of the RE-Matching input side.
// - Query attention: per sequence `a = softmax(q · Hᵀ)`, `x* = a · H`.
// - Projection-subtraction: `x^p = x − (x·x* / ‖x*‖²) x*` (a zero `x*` removes nothing).
#include "common.cuh"

// `out[t] = h[t] · v` for the rows `a..b` of `h: [T × d]`, one block reduction per row.
__device__ __forceinline__ void row_dots(float* out, const float* h, const float* v, uint32_t a, uint32_t b, int d, float* scratch) {
    for (uint32_t t = a; t < b; ++t) {
        float part = 0.0f;
        for (int c = threadIdx.x; c < d; c += blockDim.x) part += h[(size_t)t * d + c] * v[c];
        float dot = block_sum(part, scratch);
        if (threadIdx.x == 0) out[t] = dot;
    }
    __syncthreads();
}

// One block per sequence. `x_star: [n × d]`, `attn: [T]` (the weights, per sequence summing
// to 1), `h: [T × d]`, `starts: [n + 1]`, `q: [d]`.
extern "C" __global__ void query_attention_forward(float* x_star, float* attn, const float* h, const uint32_t* starts, const float* q, int d) {
    __shared__ float scratch[32];
    int s = blockIdx.x;
    uint32_t a = starts[s], b = starts[s + 1];
    row_dots(attn, h, q, a, b, d, scratch);
    float m = -INFINITY;
    for (uint32_t t = a + threadIdx.x; t < b; t += blockDim.x) m = fmaxf(m, attn[t]);
    float max = block_max(m, scratch);
    float part = 0.0f;
    for (uint32_t t = a + threadIdx.x; t < b; t += blockDim.x) {
        attn[t] = expf(attn[t] - max);
        part += attn[t];
    }
    float sum = block_sum(part, scratch);
    for (uint32_t t = a + threadIdx.x; t < b; t += blockDim.x) attn[t] /= sum;
    __syncthreads();
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.0f;
        for (uint32_t t = a; t < b; ++t) acc += attn[t] * h[(size_t)t * d + c];
        x_star[(size_t)s * d + c] = acc;
    }
}

// One block per row. `out, x, x_star: [n × d]`.
extern "C" __global__ void project_out_forward(float* out, const float* x, const float* x_star, int d) {
    __shared__ float scratch[32];
    size_t base = (size_t)blockIdx.x * d;
    float dot = 0.0f, norm2 = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        dot += x[base + c] * x_star[base + c];
        norm2 += x_star[base + c] * x_star[base + c];
    }
    dot = block_sum(dot, scratch);
    norm2 = block_sum(norm2, scratch);
    float k = norm2 > 0.0f ? dot / norm2 : 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) out[base + c] = x[base + c] - k * x_star[base + c];
}

// Backward of query attention, accumulating (`+=`). Per sequence, with `g = d_x*`:
// `dl_t = a_t (g·H_t − Σ_u a_u g·H_u)`, `dq += Σ_t dl_t H_t` (atomics across sequences),
// `dH_t += a_t g + dl_t q` when `dh` is not null. One block per sequence; `dl: [T]` scratch.
extern "C" __global__ void query_attention_backward(float* dq, float* dh, float* dl, const float* h, const uint32_t* starts, const float* q,
                                                    const float* attn, const float* d_x_star, int d) {
    __shared__ float scratch[32];
    int s = blockIdx.x;
    uint32_t a = starts[s], b = starts[s + 1];
    const float* g = d_x_star + (size_t)s * d;
    row_dots(dl, h, g, a, b, d, scratch);
    float part = 0.0f;
    for (uint32_t t = a + threadIdx.x; t < b; t += blockDim.x) part += dl[t] * attn[t];
    float mean = block_sum(part, scratch);
    for (uint32_t t = a + threadIdx.x; t < b; t += blockDim.x) dl[t] = attn[t] * (dl[t] - mean);
    __syncthreads();
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.0f;
        for (uint32_t t = a; t < b; ++t) acc += dl[t] * h[(size_t)t * d + c];
        atomicAdd(&dq[c], acc);
        if (dh) {
            for (uint32_t t = a; t < b; ++t) dh[(size_t)t * d + c] += attn[t] * g[c] + dl[t] * q[c];
        }
    }
}

// Backward of projection-subtraction, accumulating. Per row, `s = x*`, `k = x·s/‖s‖²`,
// `gs = g·s/‖s‖²`: `dx += g − gs·s`, `ds += −k g − gs (x − 2k s)`; where `s = 0`: `dx += g`.
// One block per row; `dx, d_x_star, x, x_star, d_out: [n × d]`.
extern "C" __global__ void project_out_backward(float* dx, float* d_x_star, const float* x, const float* x_star, const float* d_out, int d) {
    __shared__ float scratch[32];
    size_t base = (size_t)blockIdx.x * d;
    float norm2 = 0.0f, xs = 0.0f, gs = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float sv = x_star[base + c];
        norm2 += sv * sv;
        xs += x[base + c] * sv;
        gs += d_out[base + c] * sv;
    }
    norm2 = block_sum(norm2, scratch);
    xs = block_sum(xs, scratch);
    gs = block_sum(gs, scratch);
    if (norm2 > 0.0f) {
        float k = xs / norm2, gk = gs / norm2;
        for (int c = threadIdx.x; c < d; c += blockDim.x) {
            float g = d_out[base + c], sv = x_star[base + c];
            dx[base + c] += g - gk * sv;
            d_x_star[base + c] += -k * g - gk * (x[base + c] - 2.0f * k * sv);
        }
    } else {
        for (int c = threadIdx.x; c < d; c += blockDim.x) dx[base + c] += d_out[base + c];
    }
}
