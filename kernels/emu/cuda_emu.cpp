// The emulated launch: see cuda_emu.h. One launch at a time in the process (function-static
// `__shared__` arrays are the block's shared memory); within a launch one OS thread per
// thread of a block, and those threads run every block of the grid in turn.
#include "cuda_emu.h"

#include <algorithm>
#include <atomic>
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

// One warp's barrier and shuffle exchange, guarded by its own mutex: lanes of a warp
// synchronise with each other only, as on the GPU, so ThreadSanitizer still sees races
// between warps that no __syncthreads orders.
struct Warp {
    std::mutex m;
    std::condition_variable cv;
    unsigned size = 0;
    unsigned arrived = 0;   // lanes waiting in a warp operation
    unsigned finished = 0;  // lanes whose kernel body has returned for this block
    uint64_t generation = 0;
    uint64_t slots[32] = {};
};

// The block being run: its barrier (guarded by `m`), its warps, and the launch's failure.
struct Block {
    const char* kernel;
    unsigned threads;
    std::chrono::seconds timeout;
    std::mutex m;
    std::condition_variable cv;  // __syncthreads and the end of a block
    unsigned arrived = 0;        // threads waiting in __syncthreads
    uint64_t generation = 0;
    unsigned finished = 0;  // threads whose kernel body has returned for this block
    uint64_t block_generation = 0;
    unsigned warp_count = 0;
    std::unique_ptr<Warp[]> warps;
    // Read without ordering by waiters (a relaxed load orders nothing, so it hides no race);
    // every waiter also rechecks it under its own mutex, which `fail` takes before notifying.
    std::atomic<bool> failed{false};
    std::mutex error_m;  // a leaf: guards `error` and `index`
    std::string error;
    dim3 index;

    bool has_failed() const { return failed.load(std::memory_order_relaxed); }

    // Records the first failure and wakes every waiter. Callers hold none of the mutexes.
    void fail(const std::string& why) {
        {
            std::lock_guard lock(error_m);
            if (error.empty()) {
                char where[96];
                std::snprintf(where, sizeof where, " (block %u,%u,%u)", index.x, index.y, index.z);
                error = "kernel " + std::string(kernel) + ": " + why + where;
            }
        }
        failed.store(true, std::memory_order_relaxed);
        { std::lock_guard lock(m); }
        cv.notify_all();
        for (unsigned w = 0; w < warp_count; ++w) {
            { std::lock_guard lock(warps[w].m); }
            warps[w].cv.notify_all();
        }
    }

    // Waits on `on` (under `lock`) until `done()`; throws Abort when the launch fails or the
    // timeout passes (which fails it).
    template <typename Done>
    void wait(std::unique_lock<std::mutex>& lock, std::condition_variable& on, Done done, const char* what) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done() && !has_failed()) {
            if (on.wait_until(lock, deadline) == std::cv_status::timeout && !done() && !has_failed()) {
                lock.unlock();
                fail(std::string(what) + " timed out: a thread never reached it");
                throw Abort{};
            }
        }
        if (has_failed()) throw Abort{};
    }

    // Fails the launch with `why` after releasing `lock`, and unwinds the calling thread.
    [[noreturn]] void fail_and_abort(std::unique_lock<std::mutex>& lock, const char* why) {
        lock.unlock();
        fail(why);
        throw Abort{};
    }
};

namespace {

const char* const DIVERGENT_BARRIER = "__syncthreads not reached by every thread: some returned before it";
const char* const DIVERGENT_WARP = "a warp-synchronous operation not reached by every lane of its warp";

unsigned linear_thread() {
    return self.thread_idx.x + self.block_dim.x * (self.thread_idx.y + self.block_dim.y * self.thread_idx.z);
}

}  // namespace

void syncthreads() {
    Block& b = *self.block;
    std::unique_lock lock(b.m);
    if (b.has_failed()) throw Abort{};
    if (b.finished > 0) b.fail_and_abort(lock, DIVERGENT_BARRIER);
    uint64_t gen = b.generation;
    if (++b.arrived == b.threads) {
        b.arrived = 0;
        ++b.generation;
        b.cv.notify_all();
        return;
    }
    b.wait(lock, b.cv, [&] { return b.generation != gen; }, "__syncthreads");
}

// A barrier of the calling thread's warp; `publish` runs under the warp's lock on arrival and
// `collect` after every lane has arrived (both may be empty).
template <typename Publish>
static void warp_barrier(Block& b, Warp& w, Publish publish) {
    std::unique_lock lock(w.m);
    if (b.has_failed()) throw Abort{};
    if (w.finished > 0) b.fail_and_abort(lock, DIVERGENT_WARP);
    publish();
    uint64_t gen = w.generation;
    if (++w.arrived == w.size) {
        w.arrived = 0;
        ++w.generation;
        w.cv.notify_all();
        return;
    }
    b.wait(lock, w.cv, [&] { return w.generation != gen; }, "warp barrier");
}

void syncwarp() {
    Block& b = *self.block;
    warp_barrier(b, b.warps[linear_thread() / 32], [] {});
}

uint64_t warp_exchange(uint64_t bits, unsigned src) {
    Block& b = *self.block;
    unsigned t = linear_thread(), lane = t % 32;
    Warp& w = b.warps[t / 32];
    warp_barrier(b, w, [&] { w.slots[lane] = bits; });
    uint64_t out = 0;
    // The second barrier keeps the slots until every lane has read its value.
    warp_barrier(b, w, [&] { out = w.slots[src < w.size ? src : lane]; });
    return out;
}

namespace {

// The end of one block for one thread: waits until every thread of the block has returned,
// then the last one resets the barrier state for the next block.
void finish_block(Block& b) {
    unsigned t = linear_thread();
    Warp& w = b.warps[t / 32];
    {
        std::unique_lock lock(w.m);
        if (w.arrived > 0) b.fail_and_abort(lock, DIVERGENT_WARP);
        ++w.finished;
    }
    std::unique_lock lock(b.m);
    if (b.has_failed()) throw Abort{};
    if (b.arrived > 0) b.fail_and_abort(lock, DIVERGENT_BARRIER);
    uint64_t gen = b.block_generation;
    if (++b.finished == b.threads) {
        b.finished = 0;
        for (unsigned i = 0; i < b.warp_count; ++i) {
            std::lock_guard warp_lock(b.warps[i].m);
            b.warps[i].finished = 0;
        }
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
    b.warp_count = (threads + 31) / 32;
    b.warps = std::make_unique<emu::Warp[]>(b.warp_count);
    for (unsigned w = 0; w < b.warp_count; ++w) b.warps[w].size = std::min(32u, threads - w * 32);
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
                            std::lock_guard lock(b.error_m);
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
    if (b.has_failed()) return report(b.error);
    return 0;
}
