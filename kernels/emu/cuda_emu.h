// CPU emulation of the CUDA subset rmx's kernels use, so that the same .cu sources compile with
// g++ and run (slowly) on the host: one OS thread per CUDA thread, blocks of a launch one
// after another, `__syncthreads` as a block barrier, warp shuffles through a per-warp
// exchange, atomics through std::atomic_ref, `__shared__` as function statics (only one block
// runs at a time in the whole process) and dynamic shared memory as one exact-size heap block
// per launch (so AddressSanitizer sees overruns).
//
// A barrier that not every thread of a block reaches (a thread returned while others wait,
// or a wait that outlives `RMX_EMU_BARRIER_TIMEOUT_S`) fails the launch with the kernel's name
// instead of hanging. Kernels are launched by name through the `void**` argument array
// cuLaunchKernel takes (`rmx_emu_launch`, cuda_emu.cpp).
//
// Not emulated: inline PTX, wmma/mma, cp.async/TMA, cooperative groups, streams, timing.
#pragma once
#include <atomic>
#include <math.h>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
};

namespace emu {

struct Block;

// What a thread of the emulated launch knows about itself.
struct ThreadState {
    dim3 thread_idx, block_idx, block_dim, grid_dim;
    Block* block;
    void* dynamic_shared;
};
extern thread_local ThreadState self;

void syncthreads();
// Each lane of the calling warp publishes `bits`; returns the value of lane `src` (its own
// value when `src` is outside the warp). Two warp barriers: publish, then read.
uint64_t warp_exchange(uint64_t bits, unsigned src);
void syncwarp();

template <typename T>
T shuffle(T v, unsigned src) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffles move up to 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = warp_exchange(bits, src);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

inline unsigned lane_id() {
    unsigned linear = self.thread_idx.x + self.block_dim.x * (self.thread_idx.y + self.block_dim.y * self.thread_idx.z);
    return linear % 32;
}

// A kernel entry point called with cuLaunchKernel's argument array: `args[i]` points at the
// i-th parameter's value.
template <typename... A, std::size_t... I>
void call_with(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
template <auto F>
void trampoline(void** args) {
    call_with(F, args, std::make_index_sequence<[]<typename... A>(void (*)(A...)) { return sizeof...(A); }(F)>{});
}

struct KernelEntry {
    const char* name;
    void (*entry)(void**);
};

}  // namespace emu

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define threadIdx (emu::self.thread_idx)
#define blockIdx (emu::self.block_idx)
#define blockDim (emu::self.block_dim)
#define gridDim (emu::self.grid_dim)
#define warpSize 32
// Dynamic shared memory (`extern __shared__ T name[]` under nvcc).
#define RMX_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(emu::self.dynamic_shared)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::syncwarp(); }
template <typename T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
    unsigned lane = emu::lane_id();
    return emu::shuffle(v, (lane & ~unsigned(width - 1)) + unsigned(src % width));
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    unsigned lane = emu::lane_id();
    unsigned src = lane ^ unsigned(mask);
    return emu::shuffle(v, (src / width == lane / width) ? src : lane);
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    unsigned lane = emu::lane_id();
    unsigned src = lane + delta;
    return emu::shuffle(v, (src / width == lane / width) ? src : lane);
}

template <typename T>
T atomicAdd(T* p, T v) {
    return std::atomic_ref<T>(*p).fetch_add(v);
}
template <typename T>
T atomicMax(T* p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {
    }
    return old;
}

// expf, erff, sqrtf, fmaxf, … come from <math.h>, as on the device (no fast-math intrinsics).
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline unsigned int __float_as_uint(float x) {
    unsigned int u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}
