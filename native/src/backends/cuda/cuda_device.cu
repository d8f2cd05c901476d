// Device memory and copies for the core (core/device.h). The library links cudart statically, so it
// loads everywhere; on a machine without a driver the first call reports an error and we say "no device".
#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "backends/cuda/cuda_allocator.h"
#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "core/device.h"
#include "core/op_profile.h"

// ------------------------------------------------------------------------------------- caching allocator
// See cuda_allocator.h. One mutex guards the free lists and the table of live blocks; cudaMalloc runs under it
// too (allocation is not the hot path once the cache is warm).
namespace sdxl::cuda {

struct GraphPool {
    std::unordered_map<size_t, std::vector<void*>> free_lists;  // pool blocks freed during/after the capture
    size_t owned_blocks = 0;                                     // blocks that belong to the pool
    bool released = false;                                       // the graph is gone
};

namespace {

// The pool the calling thread's allocations go to while it captures a graph.
thread_local GraphPool* t_capture_pool = nullptr;

struct Allocator {
    std::mutex mu;
    std::unordered_map<size_t, std::vector<void*>> free_lists;  // size class -> cached blocks
    std::unordered_map<void*, size_t> live;                      // block handed out -> its size class
    std::unordered_map<void*, GraphPool*> pool_of;               // blocks owned by a graph pool
    std::unordered_set<GraphPool*> pools;
    AllocatorStats stats;
    bool caching = [] {
        const char* v = std::getenv("SDXL4J_CUDA_CACHE");
        return !(v && v[0] == '0');
    }();

    // Frees every cached block (mu held).
    void release_cached() {
        for (auto& kv : free_lists) {
            for (void* p : kv.second) (void)cudaFree(p);
        }
        free_lists.clear();
        stats.cached_bytes = 0;
        stats.cached_blocks = 0;
        (void)cudaGetLastError();
    }
};

// Never destroyed: tensors freed during static destruction must still find it.
Allocator& allocator() {
    static Allocator* a = new Allocator();
    return *a;
}

std::string summary_locked(const Allocator& a) {
    std::ostringstream out;
    out << "allocator: " << a.stats.in_use_bytes << " bytes in use in " << a.stats.in_use_blocks << " blocks, "
        << a.stats.cached_bytes << " bytes cached in " << a.stats.cached_blocks << " blocks, "
        << a.stats.device_mallocs << " cudaMalloc calls, " << a.stats.cache_hits << " cache hits"
        << (a.caching ? "" : " (caching off: SDXL4J_CUDA_CACHE=0)");
    return out.str();
}

}  // namespace

void* allocator_malloc(size_t nbytes) {
    Allocator& a = allocator();
    // Without caching, blocks are exactly the size asked for, so that a sanitizer (compute-sanitizer, the
    // emulator's redzones) sees an access past the end of a tensor instead of the size class's slack.
    const size_t cls = a.caching ? alloc::size_class(nbytes) : (nbytes ? nbytes : 1);
    std::lock_guard<std::mutex> lock(a.mu);
    GraphPool* pool = t_capture_pool;
    if (pool) {  // capturing: the pool's own free blocks first (stream-ordered reuse within the capture)
        auto pit = pool->free_lists.find(cls);
        if (pit != pool->free_lists.end() && !pit->second.empty()) {
            void* p = pit->second.back();
            pit->second.pop_back();
            a.live.emplace(p, cls);
            a.stats.in_use_bytes += cls;
            a.stats.in_use_blocks += 1;
            return p;
        }
    }
    // A block adopted by the capturing thread's pool (after it was taken from the cache or cudaMalloc).
    auto adopt = [&](void* p) {
        if (!pool) return;
        a.pool_of.emplace(p, pool);
        pool->owned_blocks += 1;
        a.stats.graph_pool_bytes += cls;
        a.stats.graph_pool_blocks += 1;
    };
    auto it = a.free_lists.find(cls);
    if (it != a.free_lists.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        a.stats.cached_bytes -= cls;
        a.stats.cached_blocks -= 1;
        a.stats.cache_hits += 1;
        a.live.emplace(p, cls);
        adopt(p);
        a.stats.in_use_bytes += cls;
        a.stats.in_use_blocks += 1;
        return p;
    }
    void* p = nullptr;
    cudaError_t err;
    if (pool) {
        // cudaMalloc is a "potentially unsafe" call during a capture: allowed in relaxed mode, and safe here because
        // the block is not part of the graph's work, only of its memory.
        cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
        (void)cudaThreadExchangeStreamCaptureMode(&mode);
        err = cudaMalloc(&p, cls);
        (void)cudaThreadExchangeStreamCaptureMode(&mode);
    } else {
        err = cudaMalloc(&p, cls);
    }
    if (err == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        const size_t had_cached = pool ? 0 : a.stats.cached_bytes;  // no cudaFree during a capture
        if (had_cached > 0) {
            a.release_cached();
            a.stats.oom_retries += 1;
            err = cudaMalloc(&p, cls);
        }
        if (err == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            const bool info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
            (void)cudaGetLastError();
            std::ostringstream msg;
            msg << "CUDA out of memory: cannot allocate " << nbytes << " bytes (size class " << cls << ")";
            if (had_cached > 0) msg << " even after returning " << had_cached << " cached bytes to the driver";
            if (info) msg << "; device: " << free_b << " of " << total_b << " bytes free";
            msg << "; " << summary_locked(a);
            throw Error(ErrorCode::OUT_OF_MEMORY, msg.str());
        }
    }
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        fail(ErrorCode::DEVICE_ERROR, "cudaMalloc(", cls, " bytes) failed: ", cudaGetErrorName(err), " (",
             cudaGetErrorString(err), ")");
    }
    try {
        a.live.emplace(p, cls);
    } catch (...) {
        (void)cudaFree(p);
        throw;
    }
    a.stats.device_mallocs += 1;
    a.stats.in_use_bytes += cls;
    a.stats.in_use_blocks += 1;
    try {
        adopt(p);
    } catch (...) {
        a.live.erase(p);
        a.stats.in_use_bytes -= cls;
        a.stats.in_use_blocks -= 1;
        (void)cudaFree(p);
        throw;
    }
    return p;
}

namespace {
// A pool block leaves its pool (mu held); the pool is deleted with its last block once released.
void disown(Allocator& a, void* p, GraphPool* pool, size_t cls) {
    a.pool_of.erase(p);
    pool->owned_blocks -= 1;
    a.stats.graph_pool_bytes -= cls;
    a.stats.graph_pool_blocks -= 1;
    if (pool->released && pool->owned_blocks == 0) delete pool;
}

// Hands a block that no pool owns to the cache, or to the driver without caching (mu held).
void give_back(Allocator& a, void* p, size_t cls) {
    if (a.caching) {
        try {
            a.free_lists[cls].push_back(p);
            a.stats.cached_bytes += cls;
            a.stats.cached_blocks += 1;
            return;
        } catch (...) {  // no host memory for the list: free it
        }
    }
    (void)cudaFree(p);
    (void)cudaGetLastError();
}
}  // namespace

GraphPool* graph_pool_create() {
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mu);
    auto* pool = new GraphPool();
    a.pools.insert(pool);
    a.stats.graph_pools += 1;
    return pool;
}

void graph_pool_begin_capture(GraphPool* pool) { t_capture_pool = pool; }
void graph_pool_end_capture() noexcept { t_capture_pool = nullptr; }

void graph_pool_release(GraphPool* pool) noexcept {
    if (!pool) return;
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mu);
    if (!a.pools.erase(pool)) return;
    a.stats.graph_pools -= 1;
    pool->released = true;
    // The graph's replays were queued on the backend stream, as is all later work that gets these blocks from
    // the cache: stream order keeps them apart. Blocks still held are given back when freed (allocator_free).
    std::vector<std::pair<void*, size_t>> blocks;
    for (auto& kv : pool->free_lists)
        for (void* p : kv.second) blocks.emplace_back(p, kv.first);
    pool->free_lists.clear();
    const bool empty = pool->owned_blocks == 0;
    for (auto& [p, cls] : blocks) {
        disown(a, p, pool, cls);  // may delete the pool with its last block
        give_back(a, p, cls);
    }
    if (empty) delete pool;
}

void allocator_free(void* ptr) noexcept {
    if (!ptr) return;
    bind_thread_quietly();  // a tensor may be freed on any thread (a Java cleaner's): cudaFree on the right device
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mu);
    auto it = a.live.find(ptr);
    if (it == a.live.end()) {  // not ours (should not happen): hand it to the driver
        (void)cudaFree(ptr);
        (void)cudaGetLastError();
        return;
    }
    const size_t cls = it->second;
    a.live.erase(it);
    a.stats.in_use_bytes -= cls;
    a.stats.in_use_blocks -= 1;
    auto po = a.pool_of.find(ptr);
    if (po != a.pool_of.end()) {
        GraphPool* pool = po->second;
        if (!pool->released) {  // stays the graph's: reused only by its own capture
            try {
                pool->free_lists[cls].push_back(ptr);
                return;
            } catch (...) {  // no host memory for the list: the block leaves the pool (and the graph) instead
            }
        }
        disown(a, ptr, pool, cls);
    }
    give_back(a, ptr, cls);
}

AllocatorStats allocator_stats() {
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mu);
    return a.stats;
}

std::string allocator_summary() {
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mu);
    return summary_locked(a);
}

void empty_cache() {
    bind_thread_quietly();
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mu);
    a.release_cached();
}

}  // namespace sdxl::cuda

namespace sdxl::device {

namespace {
struct Probe {
    int count = 0;
    std::string status;  // why none, when count is 0
};

const Probe& probe() {
    static Probe p = [] {
        Probe r;
        cudaError_t err = cudaGetDeviceCount(&r.count);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            r.count = 0;
            r.status = std::string("no CUDA device: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
        } else if (r.count == 0) {
            r.status = "no CUDA device found";
        }
        return r;
    }();
    return p;
}

// The one device this process runs on. cudaSetDevice is per host thread, so each thread that does CUDA work
// binds itself to it on its first call (bind_thread). It is fixed once CUDA state exists (the allocator's blocks,
// the stream, the library handles and graphs all belong to one device): one device per process, as Spark's GPU
// scheduling (one GPU per executor) and CUDA_VISIBLE_DEVICES give.
struct Selection {
    std::mutex mu;
    std::atomic<int> ordinal{0};
    std::atomic<bool> used{false};  // a thread has bound itself: CUDA state may exist on `ordinal`
};
Selection& selection() {
    static Selection* s = new Selection();  // never destroyed, like the allocator
    return *s;
}
thread_local int t_bound = -1;  // the device this thread last set (-1: none yet)

void require_device() {
    if (probe().count == 0) fail(ErrorCode::DEVICE_ERROR, "CUDA requested but unavailable: ", probe().status);
    cuda::bind_thread();
}
}  // namespace

bool cuda_compiled() { return true; }
bool cuda_available() { return probe().count > 0; }

std::string cuda_status() {
    const Probe& p = probe();
    if (p.count == 0) return p.status;
    const int d = selection().ordinal.load();
    std::string s = std::to_string(p.count) + " CUDA device(s); using device " + std::to_string(d);
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess) {
        s += std::string(": ") + prop.name + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
             std::to_string(prop.totalGlobalMem >> 20) + " MiB";
    } else {
        (void)cudaGetLastError();
    }
    return s;
}

int cuda_device() { return selection().ordinal.load(); }

void select_cuda_device(int ordinal) {
    if (probe().count == 0) fail(ErrorCode::DEVICE_ERROR, "CUDA device ", ordinal, " requested but unavailable: ", probe().status);
    if (ordinal < 0 || ordinal >= probe().count)
        fail(ErrorCode::INVALID_ARGUMENT, "CUDA device ", ordinal, " does not exist: this process sees ", probe().count,
             " device(s), 0 to ", probe().count - 1, " (CUDA_VISIBLE_DEVICES renumbers them from 0)");
    Selection& s = selection();
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.used.load() && s.ordinal.load() != ordinal)
        fail(ErrorCode::INVALID_ARGUMENT, "this process already runs on CUDA device ", s.ordinal.load(),
             "; it cannot move to device ", ordinal, ": one CUDA device per process (run one process per GPU, e.g. "
             "Spark's spark.executor.resource.gpu.amount=1, or CUDA_VISIBLE_DEVICES)");
    s.ordinal.store(ordinal);
}

void* cuda_malloc(size_t nbytes) {
    require_device();
    return cuda::allocator_malloc(nbytes);
}

void cuda_free(void* ptr) noexcept { cuda::allocator_free(ptr); }  // runs in destructors: never throws

void cuda_empty_cache() { cuda::empty_cache(); }

void copy_host_to_device(void* dst, const void* src, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
    profile::count_device_call();
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
    profile::count_device_call();
}

// On the backend stream (not a synchronous cudaMemcpy): device-to-device copies never block the host anyway,
// and an asynchronous copy on the stream can be captured into a CUDA graph.
void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, cuda::stream()));
    profile::count_device_call();
}

void cuda_zero(void* dst, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, cuda::stream()));
    profile::count_device_call();
}

// ------------------------------------------------------------------------------------- op timing events
namespace {
struct Timer {
    std::mutex mu;
    std::vector<cudaEvent_t> events;  // grows to the most marks of one profile, then reused
    size_t used = 0;
};
Timer& timer() {
    static Timer* t = new Timer();  // never destroyed, like the allocator
    return *t;
}
}  // namespace

int cuda_timer_mark() {
    require_device();
    Timer& t = timer();
    std::lock_guard<std::mutex> lock(t.mu);
    if (t.used == t.events.size()) {
        cudaEvent_t e = nullptr;
        SDXL_CUDA_CHECK(cudaEventCreate(&e));
        t.events.push_back(e);
    }
    SDXL_CUDA_CHECK(cudaEventRecord(t.events[t.used], cuda::stream()));
    return int(t.used++);
}

double cuda_timer_elapsed_ms(int a, int b) {
    Timer& t = timer();
    std::lock_guard<std::mutex> lock(t.mu);
    if (a < 0 || b < 0 || size_t(a) >= t.used || size_t(b) >= t.used)
        fail(ErrorCode::INVALID_ARGUMENT, "cuda_timer_elapsed_ms: marks ", a, " and ", b, " out of ", t.used);
    SDXL_CUDA_CHECK(cudaEventSynchronize(t.events[size_t(b)]));
    float ms = 0.0f;
    SDXL_CUDA_CHECK(cudaEventElapsedTime(&ms, t.events[size_t(a)], t.events[size_t(b)]));
    return double(ms);
}

void cuda_timer_reset() {
    Timer& t = timer();
    std::lock_guard<std::mutex> lock(t.mu);
    t.used = 0;
}

}  // namespace sdxl::device

namespace sdxl::cuda {

namespace {
thread_local cudaStream_t t_stream = nullptr;  // this thread's capture stream while it captures a graph
}

cudaStream_t main_stream() {
    static cudaStream_t s = [] {
        cudaStream_t created = nullptr;
        SDXL_CUDA_CHECK(cudaStreamCreate(&created));
        return created;
    }();
    return s;
}

cudaStream_t stream() {
    bind_thread();
    return t_stream ? t_stream : main_stream();
}

void bind_thread() {
    auto& s = device::selection();
    int d = s.ordinal.load(std::memory_order_acquire);
    if (device::t_bound == d) return;
    {
        std::lock_guard<std::mutex> lock(s.mu);  // against a select_cuda_device between the load and `used`
        d = s.ordinal.load();
        s.used.store(true);
    }
    SDXL_CUDA_CHECK(cudaSetDevice(d));
    device::t_bound = d;
}

void bind_thread_quietly() noexcept {
    const int d = device::selection().ordinal.load(std::memory_order_acquire);
    if (device::t_bound == d) return;
    if (cudaSetDevice(d) == cudaSuccess) device::t_bound = d;
    else (void)cudaGetLastError();  // the free goes on as before; the next checked call reports a broken context
}

void set_thread_stream(cudaStream_t s) noexcept { t_stream = s; }

}  // namespace sdxl::cuda
