// The softmax of packed multi-head attention. The products around it (`S = Q Kᵀ`,
// `ctx = P V` and the backward's four) are cuBLAS strided-batched GEMMs over the heads of one
// sequence (src/backend/cuda/attention.rs); these kernels work on the probability matrices
// of all sequences at once.
//
// Layout of `p`: sequence after sequence, each `[heads × len × len]` (row `i` of head `h` of
// sequence `s` at `p_offsets[s] + (h·len + i)·len`); `starts: [n_seqs + 1]` as in the CPU op.
#include "common.cuh"

// The row of `p` that block (token t, head h) owns, and its length.
__device__ __forceinline__ float* attention_row(float* p, const uint32_t* starts, const unsigned long long* p_offsets, int n_seqs, int* len) {
    uint32_t t = blockIdx.x;
    int s = sequence_of(starts, n_seqs, t);
    *len = (int)(starts[s + 1] - starts[s]);
    int i = (int)(t - starts[s]);
    return p + p_offsets[s] + ((size_t)blockIdx.y * *len + i) * *len;
}

// `row ← softmax(scale · row)` per row (max-subtracted). Grid (T, heads).
extern "C" __global__ void attention_softmax_forward(float* p, const uint32_t* starts, const unsigned long long* p_offsets, int n_seqs, float scale) {
    __shared__ float scratch[32];
    int len;
    float* row = attention_row(p, starts, p_offsets, n_seqs, &len);
    float m = -INFINITY;
    for (int j = threadIdx.x; j < len; j += blockDim.x) m = fmaxf(m, row[j]);
    float max = block_max(m, scratch) * scale;
    float s = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        float e = expf(row[j] * scale - max);
        row[j] = e;
        s += e;
    }
    float inv = 1.0f / block_sum(s, scratch);
    for (int j = threadIdx.x; j < len; j += blockDim.x) row[j] *= inv;
}

// `dp ← scale · p ⊙ (dp − Σ p ⊙ dp)` per row: the gradient of the logits (times `scale`).
// `dp, p`: the layout above. Grid (T, heads).
extern "C" __global__ void attention_softmax_backward(float* dp, const float* p, const uint32_t* starts, const unsigned long long* p_offsets,
                                                      int n_seqs, float scale) {
    __shared__ float scratch[32];
    int len;
    float* drow = attention_row(dp, starts, p_offsets, n_seqs, &len);
    const float* prow = p + (drow - dp);
    float s = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) s += drow[j] * prow[j];
    float dot = block_sum(s, scratch);
    for (int j = threadIdx.x; j < len; j += blockDim.x) drow[j] = scale * prow[j] * (drow[j] - dot);
}
