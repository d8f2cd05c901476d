// A small fixed thread pool for the CPU backend: parallel_for splits [0, n) into contiguous chunks.
// Nested calls (from inside a worker) run inline, so ops may call each other freely.
#pragma once

#include <cstdint>
#include <functional>

namespace sdxl {

// Number of worker threads (default: hardware concurrency; SDXL_NUM_THREADS overrides).
int num_threads();
void set_num_threads(int n);

// Calls body(begin, end) on disjoint chunks covering [0, n). `grain` is the smallest useful chunk.
// Exceptions thrown by body are rethrown in the caller (the first one).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace sdxl
