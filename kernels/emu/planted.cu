// Kernels with planted bugs, compiled only into the emulation library: the tests prove that
// the emulator and the sanitizer runs (scripts/cuda-emu-check.sh) catch these bugs.
#include "../common.cuh"

// Reverses `x: [blockDim.x]` through shared memory but without the barrier between the
// writes and the reads: a data race ThreadSanitizer must report.
extern "C" __global__ void planted_missing_sync(float* out, const float* x) {
    __shared__ float tile[1024];
    unsigned t = threadIdx.x;
    tile[t] = x[t];
    out[t] = tile[blockDim.x - 1 - t];
}

// Copies `n` floats but reads one past the end of `x`: AddressSanitizer must report it.
extern "C" __global__ void planted_oob_read(float* out, const float* x, int n) {
    int i = threadIdx.x;
    if (i < n) out[i] = x[i] + x[i + 1];
}

// Threads at or past `limit` return before the barrier the others wait at: the emulator must
// fail the launch naming this kernel instead of hanging.
extern "C" __global__ void planted_divergent_barrier(float* out, int limit) {
    __shared__ float tile[1024];
    if ((int)threadIdx.x >= limit) return;
    tile[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = tile[0];
}
