// RE-Matching's fused entity max-pool and marker gather over the last hidden layer
// `h: [T × d]`: per instance `e_h = max over h[head span]`, `e_t = max over h[tail span]` (a
// true max, first row on ties, its row kept for the backward) and
// `m = [h[head marker] ; h[tail marker]]`.
//
// `rows: [n × 6]` per instance: head start, head end, tail start, tail end (half-open),
// head marker, tail marker.
#include "common.cuh"

__device__ __forceinline__ void max_rows(const float* h, int d, int c, uint32_t start, uint32_t end, float* out, uint32_t* arg) {
    float best = h[(size_t)start * d + c];
    uint32_t at = start;
    for (uint32_t t = start + 1; t < end; ++t) {
        float v = h[(size_t)t * d + c];
        if (v > best) {
            best = v;
            at = t;
        }
    }
    *out = best;
    *arg = at;
}

// One block per instance. `heads, tails: [n × d]`, `markers: [n × 2d]`,
// `argmax: [n × 2 × d]` (head then tail).
extern "C" __global__ void entity_pool_forward(float* heads, float* tails, float* markers, uint32_t* argmax, const float* h, const uint32_t* rows,
                                               int d) {
    int i = blockIdx.x;
    const uint32_t* r = rows + 6 * i;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        max_rows(h, d, c, r[0], r[1], &heads[(size_t)i * d + c], &argmax[(size_t)i * 2 * d + c]);
        max_rows(h, d, c, r[2], r[3], &tails[(size_t)i * d + c], &argmax[(size_t)i * 2 * d + d + c]);
        markers[(size_t)i * 2 * d + c] = h[(size_t)r[4] * d + c];
        markers[(size_t)i * 2 * d + d + c] = h[(size_t)r[5] * d + c];
    }
}

// Backward, accumulating into `dh: [T × d]`: each column of `d_heads, d_tails: [n × d]` goes
// to the row its max came from, `d_markers: [n × 2d]` to the marker rows. One thread per
// column walks the instances in order (instances share rows), so the sums are the CPU op's,
// in its order, without atomics.
extern "C" __global__ void entity_pool_backward(float* dh, const uint32_t* argmax, const float* d_heads, const float* d_tails,
                                                const float* d_markers, const uint32_t* rows, int n, int d) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    for (int i = 0; i < n; ++i) {
        const uint32_t* r = rows + 6 * i;
        const uint32_t* arg = argmax + (size_t)i * 2 * d;
        dh[(size_t)arg[c] * d + c] += d_heads[(size_t)i * d + c];
        dh[(size_t)arg[d + c] * d + c] += d_tails[(size_t)i * d + c];
        dh[(size_t)r[4] * d + c] += d_markers[(size_t)i * 2 * d + c];
        dh[(size_t)r[5] * d + c] += d_markers[(size_t)i * 2 * d + d + c];
    }
}
