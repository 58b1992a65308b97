// Inverted dropout with the CPU op's counter-based mask: element `i` is kept iff
// `hash(key, i) ≥ threshold` (threshold = p · 2⁶⁴, computed by the launcher as the CPU op
// does), kept values scaled by `scale = 1/(1 − p)`. Bit for bit the CPU op's result.
#include "common.cuh"

// SplitMix64's finaliser of `key + i·γ`.
__device__ __forceinline__ unsigned long long dropout_hash(unsigned long long key, unsigned long long i) {
    unsigned long long z = key + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// `x ← keep(i) ? x·scale : 0` in place, `x: [n]`.
extern "C" __global__ void dropout_forward(float* x, long long n, unsigned long long threshold, float scale, unsigned long long key) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        x[i] = dropout_hash(key, (unsigned long long)i) >= threshold ? x[i] * scale : 0.0f;
    }
}

// `dx += keep(i) ? dy·scale : 0`, `dx, dy: [n]`.
extern "C" __global__ void dropout_backward(float* dx, const float* dy, long long n, unsigned long long threshold, float scale,
                                            unsigned long long key) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        // __fmul_rn: rounded product, never fused into the add (the CPU rounds it first).
        dx[i] += dropout_hash(key, (unsigned long long)i) >= threshold ? __fmul_rn(dy[i], scale) : 0.0f;
    }
}
