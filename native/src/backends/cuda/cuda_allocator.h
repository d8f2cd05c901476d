// The caching device allocator behind device::cuda_malloc / cuda_free (cuda_device.cu).
//
// cudaMalloc/cudaFree are slow (cudaFree synchronises the device), and a diffusion step allocates and frees
// the same sizes over and over. Freed blocks are therefore kept in free lists by size class and handed out
// again; nothing is returned to the driver until empty_cache() or an allocation that would otherwise fail.
//
// Size classes (roughly PyTorch's caching allocator with roundup_power2_divisions = 4):
//   - up to 1 MiB: multiples of 512 B;
//   - above 1 MiB: each power-of-two interval [2^k, 2^(k+1)) is split into 4 equal classes (1, 1.25, 1.5,
//     1.75 x 2^k), so a request wastes at most 25% (plain power-of-two classes would waste up to 50%).
// A block is reused only for a request of exactly its class (no splitting, no merging).
//
// Stream ordering: every kernel and library call of the backend runs on its one stream (cuda::stream()),
// and cudaMemcpy on the legacy default stream is ordered with it. A block freed while work that uses it is
// still queued may thus be handed out at once: any later use is queued behind that work. Code that uses
// another stream must synchronise before freeing (or not use this allocator).
//
// Graph pools (CUDA graphs, cuda_graph.cpp): while a thread captures a graph, the blocks it allocates belong to
// that graph's private pool, because their addresses are baked into the graph. Within the capture a freed pool
// block is reused in stream order (a single-stream capture is a chain of nodes, run in capture order); a pool
// block is never handed to work outside the graph; the blocks go back to the cache when the graph is destroyed
// (graph_pool_release; blocks still held by a tensor then go when that tensor is freed). A pool draws on the
// cache first, then on cudaMalloc in relaxed capture mode (cudaMalloc is otherwise refused during a capture).
//
// SDXL4J_CUDA_CACHE=0 turns the cache off (every free is a cudaFree, every block exactly the size asked for),
// e.g. to run under compute-sanitizer or the emulator's redzones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sdxl::cuda {

namespace alloc {

constexpr size_t kSmallGranule = 512;
constexpr size_t kSmallLimit = size_t(1) << 20;  // 1 MiB
constexpr int kDivisionsPerPowerOfTwo = 4;

// The size class (bytes actually allocated) for a request of n bytes; n == 0 is served as 1 byte.
inline size_t size_class(size_t n) {
    if (n == 0) n = 1;
    if (n <= kSmallLimit) return (n + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
    // Largest power of two <= n.
    size_t p = kSmallLimit;
    while (p <= (SIZE_MAX >> 1) && (p << 1) <= n) p <<= 1;
    const size_t step = p / kDivisionsPerPowerOfTwo;
    const size_t q = (n - p + step - 1) / step;  // 0..4 steps above p
    if (q > (SIZE_MAX - p) / step) return n;     // would overflow: no rounding for absurd sizes
    return p + q * step;
}

}  // namespace alloc

struct AllocatorStats {
    size_t in_use_bytes = 0;     // class bytes handed out and not yet freed
    size_t in_use_blocks = 0;
    size_t cached_bytes = 0;     // class bytes held in free lists
    size_t cached_blocks = 0;
    uint64_t device_mallocs = 0; // cudaMalloc calls that succeeded
    uint64_t cache_hits = 0;     // requests served from a free list
    uint64_t oom_retries = 0;    // times the cache was emptied to retry a failed cudaMalloc
    size_t graph_pool_bytes = 0;  // class bytes owned by graph pools (in use or free within their pool)
    size_t graph_pool_blocks = 0;
    size_t graph_pools = 0;       // pools not yet released
};

// What device::cuda_malloc / cuda_free do (after checking that a device exists). OUT_OF_MEMORY names the
// request, its class, the device's free memory and the cache; it is thrown only after the cache was emptied
// and cudaMalloc retried once.
void* allocator_malloc(size_t nbytes);
void allocator_free(void* ptr) noexcept;

AllocatorStats allocator_stats();
std::string allocator_summary();  // one line for logs and error messages
// Graph pools (see above). begin/end bind the calling thread's allocations to `pool` during a capture.
struct GraphPool;
GraphPool* graph_pool_create();
void graph_pool_begin_capture(GraphPool* pool);
void graph_pool_end_capture() noexcept;
void graph_pool_release(GraphPool* pool) noexcept;

// Returns every cached block to the driver (cudaFree). Blocks in use are not touched. Thread-safe.
void empty_cache();

}  // namespace sdxl::cuda

namespace sdxl::device {
// Proposed for core/device.h (with a no-op in no_cuda.cpp): same as cuda::empty_cache().
void cuda_empty_cache();
}  // namespace sdxl::device
