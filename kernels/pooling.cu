// Mean pooling of packed sequences: `out[s] = Σ_{t ∈ s} h[t] / len(s)`. Summed row after row
// per column, as the CPU op does (same order, same result).
#include "common.cuh"

// One block per sequence. `out: [n_seqs × d]`, `h: [T × d]`, `starts: [n_seqs + 1]`.
extern "C" __global__ void mean_pool_forward(float* out, const float* h, const uint32_t* starts, int d) {
    int s = blockIdx.x;
    uint32_t a = starts[s], b = starts[s + 1];
    float n = (float)(b > a ? b - a : 1);
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.0f;
        for (uint32_t t = a; t < b; ++t) acc += h[(size_t)t * d + c];
        out[(size_t)s * d + c] = acc / n;
    }
}

// `dh[t] += d_out[s] / len(s)` for every row `t` of sequence `s`; one block per token row.
// `dh: [T × d]`, `d_out: [n_seqs × d]`.
extern "C" __global__ void mean_pool_backward(float* dh, const float* d_out, const uint32_t* starts, int n_seqs, int d) {
    uint32_t t = blockIdx.x;
    int s = sequence_of(starts, n_seqs, t);
    float n = (float)(starts[s + 1] - starts[s]);
    for (int c = threadIdx.x; c < d; c += blockDim.x) dh[(size_t)t * d + c] += d_out[(size_t)s * d + c] / n;
}
