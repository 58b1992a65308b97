// Shared by every kernel file: the emulation switch, dynamic shared memory, warp and block
// reductions. Kernels are launched with blockDim.x a multiple of 32 (the launchers' choice).
#pragma once
#ifdef RMX_CUDA_EMU
#include "emu/cuda_emu.h"
#else
#include <stdint.h>
#define RMX_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// The reduction of `v` over the block (`reduce_warp` within each warp, then across warps),
// returned to every thread; lanes past the last warp count as `identity`. `scratch: [32]` in
// shared memory; the leading barrier lets a block reduce several times with one scratch.
template <typename WarpReduce>
__device__ __forceinline__ float block_reduce(float v, float* scratch, float identity, WarpReduce reduce_warp) {
    v = reduce_warp(v);
    unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return reduce_warp(lane < blockDim.x / 32 ? scratch[lane] : identity);
}

__device__ __forceinline__ float block_sum(float v, float* scratch) {
    return block_reduce(v, scratch, 0.0f, [](float x) { return warp_sum(x); });
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    return block_reduce(v, scratch, -INFINITY, [](float x) { return warp_max(x); });
}

// The packed sequence holding token row `t`: the largest `s` with `starts[s] <= t`.
// `starts: [n_seqs + 1]`, increasing, `starts[n_seqs] = T`.
__device__ __forceinline__ int sequence_of(const uint32_t* starts, int n_seqs, uint32_t t) {
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (starts[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return lo;
}
