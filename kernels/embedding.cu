// BERT input embeddings: `out[t] = word[ids[t]] + position[p(t)] + token_type0`, positions
// restarting at 0 in every packed sequence.
#include "common.cuh"

// One block per token row. `out: [T × d]`, `ids: [T]`, `starts: [n_seqs + 1]`,
// `word: [V × d]`, `position: [P × d]`, `token_type0: [d]`.
extern "C" __global__ void embeddings_forward(float* out, const uint32_t* ids, const uint32_t* starts, const float* word, const float* position,
                                              const float* token_type0, int n_seqs, int d) {
    uint32_t t = blockIdx.x;
    uint32_t p = t - starts[sequence_of(starts, n_seqs, t)];
    const float* w = word + (size_t)ids[t] * d;
    const float* pos = position + (size_t)p * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) out[(size_t)t * d + c] = w[c] + pos[c] + token_type0[c];
}

// Backward: scatter-adds `d_out: [T × d]` into `d_word: [V × d]`, `d_position: [P × d]` and
// `d_token_type0: [d]` (`+=`, atomics: tokens share ids and positions).
extern "C" __global__ void embeddings_backward(float* d_word, float* d_position, float* d_token_type0, const float* d_out, const uint32_t* ids,
                                               const uint32_t* starts, int n_seqs, int d) {
    uint32_t t = blockIdx.x;
    uint32_t p = t - starts[sequence_of(starts, n_seqs, t)];
    const float* g = d_out + (size_t)t * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        atomicAdd(&d_word[(size_t)ids[t] * d + c], g[c]);
        atomicAdd(&d_position[(size_t)p * d + c], g[c]);
        atomicAdd(&d_token_type0[c], g[c]);
    }
}
