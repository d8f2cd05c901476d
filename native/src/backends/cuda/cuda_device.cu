// Device memory and copies for the core (core/device.h). The library links cudart statically, so it
// loads everywhere; on a machine without a driver the first call reports an error and we say "no device".
#include <cuda_runtime.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <unordered_map>
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

namespace {

struct Allocator {
    std::mutex mu;
    std::unordered_map<size_t, std::vector<void*>> free_lists;  // size class -> cached blocks
    std::unordered_map<void*, size_t> live;                      // block handed out -> its size class
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
    auto it = a.free_lists.find(cls);
    if (it != a.free_lists.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        a.stats.cached_bytes -= cls;
        a.stats.cached_blocks -= 1;
        a.stats.cache_hits += 1;
        a.live.emplace(p, cls);
        a.stats.in_use_bytes += cls;
        a.stats.in_use_blocks += 1;
        return p;
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        const size_t had_cached = a.stats.cached_bytes;
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
    return p;
}

void allocator_free(void* ptr) noexcept {
    if (!ptr) return;
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
    if (a.caching) {
        try {
            a.free_lists[cls].push_back(ptr);
            a.stats.cached_bytes += cls;
            a.stats.cached_blocks += 1;
            return;
        } catch (...) {  // no host memory for the list: fall through and free it
        }
    }
    (void)cudaFree(ptr);
    (void)cudaGetLastError();
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
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mu);
    a.release_cached();
}

}  // namespace sdxl::cuda

namespace sdxl::device {

namespace {
struct Probe {
    int count = 0;
    std::string status;
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
        } else {
            cudaDeviceProp prop{};
            if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
                r.status = std::to_string(r.count) + " CUDA device(s); device 0: " + prop.name + ", sm_" +
                           std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                           std::to_string(prop.totalGlobalMem >> 20) + " MiB";
            } else {
                r.status = std::to_string(r.count) + " CUDA device(s)";
            }
        }
        return r;
    }();
    return p;
}

void require_device() {
    if (probe().count == 0) fail(ErrorCode::DEVICE_ERROR, "CUDA requested but unavailable: ", probe().status);
}
}  // namespace

bool cuda_compiled() { return true; }
bool cuda_available() { return probe().count > 0; }
std::string cuda_status() { return probe().status; }

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

void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice));
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

cudaStream_t stream() {
    static cudaStream_t s = [] {
        cudaStream_t created = nullptr;
        SDXL_CUDA_CHECK(cudaStreamCreate(&created));
        return created;
    }();
    return s;
}

}  // namespace sdxl::cuda
