// The emulated launch: see cuda_emu.h. One launch at a time in the process (function-static
// `__shared__` arrays are the block's shared memory); within a launch one OS thread per
// thread of a block, and those threads run every block of the grid in turn.
#include "cuda_emu.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace emu {

thread_local ThreadState self;

namespace {

// Thrown inside a kernel thread to unwind it when the launch has failed.
struct Abort {};

std::chrono::seconds barrier_timeout() {
    const char* s = std::getenv("RMX_EMU_BARRIER_TIMEOUT_S");
    long v = s ? std::strtol(s, nullptr, 10) : 0;
    return std::chrono::seconds(v > 0 ? v : 20);
}

}  // namespace

// Barrier state of the block being run. Every counter is guarded by `m`.
struct Block {
    const char* kernel;
    unsigned threads;
    std::chrono::seconds timeout;
    std::mutex m;
    std::condition_variable cv;  // block barrier and end of block
    std::unique_ptr<std::condition_variable[]> warp_cv;  // one per warp: a warp's barrier wakes only its lanes
    unsigned warps = 0;
    dim3 index;
    unsigned arrived = 0;   // threads waiting in __syncthreads
    uint64_t generation = 0;
    unsigned finished = 0;  // threads whose kernel body has returned for this block
    uint64_t block_generation = 0;
    std::vector<unsigned> warp_arrived, warp_finished;
    std::vector<uint64_t> warp_generation;
    std::vector<uint64_t> warp_slots;  // 32 per warp
    bool failed = false;
    std::string error;

    unsigned warp_size(unsigned warp) const { return std::min(32u, threads - warp * 32); }

    // Records the first failure and wakes every waiter. Caller holds `m`.
    void fail(std::string why) {
        if (!failed) {
            failed = true;
            char where[96];
            std::snprintf(where, sizeof where, " (block %u,%u,%u)", index.x, index.y, index.z);
            error = "kernel " + std::string(kernel) + ": " + why + where;
        }
        cv.notify_all();
        for (unsigned w = 0; w < warps; ++w) warp_cv[w].notify_all();
    }

    // Waits on `on` until `done()`, the launch fails (throws Abort) or the timeout passes.
    template <typename Done>
    void wait(std::unique_lock<std::mutex>& lock, std::condition_variable& on, Done done, const char* what) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done() && !failed) {
            if (on.wait_until(lock, deadline) == std::cv_status::timeout && !done() && !failed) {
                fail(std::string(what) + " timed out: a thread never reached it");
            }
        }
        if (failed) throw Abort{};
    }
};

namespace {

unsigned linear_thread() {
    return self.thread_idx.x + self.block_dim.x * (self.thread_idx.y + self.block_dim.y * self.thread_idx.z);
}

}  // namespace

void syncthreads() {
    Block& b = *self.block;
    std::unique_lock lock(b.m);
    if (b.failed) throw Abort{};
    if (b.finished > 0) b.fail("__syncthreads not reached by every thread: some returned before it");
    uint64_t gen = b.generation;
    if (++b.arrived == b.threads) {
        b.arrived = 0;
        ++b.generation;
        b.cv.notify_all();
        return;
    }
    b.wait(lock, b.cv, [&] { return b.generation != gen; }, "__syncthreads");
}

// A barrier of the calling thread's warp.
static void warp_barrier(Block& b, unsigned warp) {
    std::unique_lock lock(b.m);
    if (b.failed) throw Abort{};
    if (b.warp_finished[warp] > 0) b.fail("a warp-synchronous operation not reached by every lane of its warp");
    uint64_t gen = b.warp_generation[warp];
    if (++b.warp_arrived[warp] == b.warp_size(warp)) {
        b.warp_arrived[warp] = 0;
        ++b.warp_generation[warp];
        b.warp_cv[warp].notify_all();
        return;
    }
    b.wait(lock, b.warp_cv[warp], [&] { return b.warp_generation[warp] != gen; }, "warp barrier");
}

void syncwarp() {
    warp_barrier(*self.block, linear_thread() / 32);
}

uint64_t warp_exchange(uint64_t bits, unsigned src) {
    Block& b = *self.block;
    unsigned t = linear_thread(), warp = t / 32, lane = t % 32;
    {
        std::lock_guard lock(b.m);
        b.warp_slots[warp * 32 + lane] = bits;
    }
    warp_barrier(b, warp);
    uint64_t out;
    {
        std::lock_guard lock(b.m);
        out = b.warp_slots[warp * 32 + (src < b.warp_size(warp) ? src : lane)];
    }
    warp_barrier(b, warp);
    return out;
}

namespace {

// The end of one block for one thread: waits until every thread of the block has returned,
// then the last one resets the barrier state for the next block.
void finish_block(Block& b) {
    std::unique_lock lock(b.m);
    if (b.failed) throw Abort{};
    if (b.arrived > 0) b.fail("__syncthreads not reached by every thread: some returned before it");
    unsigned warp = linear_thread() / 32;
    if (b.warp_arrived[warp] > 0) b.fail("a warp-synchronous operation not reached by every lane of its warp");
    ++b.warp_finished[warp];
    uint64_t gen = b.block_generation;
    if (++b.finished == b.threads) {
        b.finished = 0;
        std::fill(b.warp_finished.begin(), b.warp_finished.end(), 0u);
        ++b.block_generation;
        b.cv.notify_all();
        return;
    }
    b.wait(lock, b.cv, [&] { return b.block_generation != gen; }, "the end of the block");
}

std::mutex launch_mutex;

}  // namespace

}  // namespace emu

// Generated by build.rs from the kernel sources: every `extern "C" __global__` entry point.
extern const emu::KernelEntry rmx_emu_kernels[];
extern const std::size_t rmx_emu_kernel_count;

// Runs kernel `name` on grid × block threads with `shared_bytes` of dynamic shared memory and
// cuLaunchKernel's argument array. Returns 0, or 1 with a message in `err` (NUL-terminated,
// at most `err_len` bytes): unknown kernel, bad launch shape, or a barrier not every thread
// reached. A kernel that faults crashes the process, as it would abort a CUDA context.
extern "C" int rmx_emu_launch(const char* name, const unsigned* grid, const unsigned* block, unsigned shared_bytes, void** args, char* err,
                              std::size_t err_len) {
    auto report = [&](const std::string& msg) {
        std::snprintf(err, err_len, "%s", msg.c_str());
        return 1;
    };
    void (*entry)(void**) = nullptr;
    for (std::size_t i = 0; i < rmx_emu_kernel_count; ++i) {
        if (std::strcmp(rmx_emu_kernels[i].name, name) == 0) entry = rmx_emu_kernels[i].entry;
    }
    if (!entry) return report(std::string("no kernel named ") + name);
    unsigned threads = block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024 || grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || grid[1] > 65535 || grid[2] > 65535) {
        return report(std::string("kernel ") + name + ": invalid launch shape");
    }
    if (shared_bytes > 227 * 1024) return report(std::string("kernel ") + name + ": more dynamic shared memory than a block can have");

    std::lock_guard one_launch(emu::launch_mutex);
    emu::Block b;
    b.kernel = name;
    b.threads = threads;
    b.timeout = emu::barrier_timeout();
    unsigned warps = (threads + 31) / 32;
    b.warps = warps;
    b.warp_cv = std::make_unique<std::condition_variable[]>(warps);
    b.warp_arrived.assign(warps, 0);
    b.warp_finished.assign(warps, 0);
    b.warp_generation.assign(warps, 0);
    b.warp_slots.assign(warps * 32, 0);
    std::unique_ptr<unsigned char[]> shared(shared_bytes ? new unsigned char[shared_bytes] : nullptr);
    dim3 g(grid[0], grid[1], grid[2]), bd(block[0], block[1], block[2]);

    auto body = [&](unsigned t) {
        emu::self.block_dim = bd;
        emu::self.grid_dim = g;
        emu::self.thread_idx = dim3(t % bd.x, (t / bd.x) % bd.y, t / (bd.x * bd.y));
        emu::self.block = &b;
        emu::self.dynamic_shared = shared.get();
        try {
            for (unsigned z = 0; z < g.z; ++z)
                for (unsigned y = 0; y < g.y; ++y)
                    for (unsigned x = 0; x < g.x; ++x) {
                        emu::self.block_idx = dim3(x, y, z);
                        if (t == 0) {
                            std::lock_guard lock(b.m);
                            b.index = emu::self.block_idx;
                        }
                        entry(args);
                        emu::finish_block(b);
                    }
        } catch (const emu::Abort&) {
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(body, t);
    for (auto& th : pool) th.join();
    if (b.failed) return report(b.error);
    return 0;
}
