// The few device services the core needs from the CUDA backend: memory and copies.
// Implemented in backends/cuda/cuda_device.cu (memory, plain copies) and backends/cuda/cuda_misc.cu (device-side
// strided copy and dtype conversion) when built with CUDA, else by backends/cuda/no_cuda.cpp,
// whose functions report UNSUPPORTED. A build with CUDA still runs on a machine without a driver:
// cuda_available() is then false and nothing else here is called.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/dtype.h"

namespace sdxl::device {

bool cuda_compiled();          // built with the CUDA backend
bool cuda_available();         // compiled in and a usable device exists
std::string cuda_status();     // one line for logs: devices found and the one used, or why none
// The CUDA device this process runs on (default 0). select_cuda_device changes it, before any CUDA work or to the
// same device after: one device per process (INVALID_ARGUMENT to move once work ran; DEVICE_ERROR without CUDA).
int cuda_device();
void select_cuda_device(int ordinal);
// Multi-line report for logs: driver and runtime versions, and the cuBLAS / cuDNN actually loaded (path and
// version as the library reports it), or where they were looked for. Loads the libraries if not loaded yet.
std::string cuda_versions();
void* cuda_malloc(size_t nbytes);
void cuda_free(void* ptr) noexcept;
void copy_host_to_device(void* dst, const void* src, size_t nbytes);
void copy_device_to_host(void* dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);
// Gives the caching allocator's free blocks back to the driver (no-op without CUDA).
void cuda_empty_cache();
// nbytes of zeros at dst, on the backend's stream (a memset node when captured into a graph).
void cuda_zero(void* dst, size_t nbytes);

// CUDA graphs (backends/cuda/cuda_graph.cpp). cuda_graph_capture runs `body` on the calling thread with the
// backend's work captured instead of run (thread-local capture mode, on a stream of its own; the thread's
// allocations come from the graph's private memory pool) and returns the instantiated graph, or null with *why
// when the capture failed (a graph-unsafe call in body, which CUDA refuses: the body's results are then garbage).
// Launch replays the captured work on the backend stream; destroying the graph releases its pool (blocks still
// held by tensors follow when those are freed). One graph must not be launched from two threads at once.
struct CudaGraph;
std::shared_ptr<CudaGraph> cuda_graph_capture(const std::function<void()>& body, std::string* why);
void cuda_graph_launch(CudaGraph& graph);
size_t cuda_graph_nodes(const CudaGraph& graph);  // nodes captured

// Kernels on the backend's stream (asynchronous; later copies to the host wait for them). Both pointers on the
// device, not overlapping; strides in elements.
// dst (contiguous, `shape`) <- the strided view at src, elements of `dtype` (any dtype, any ndim, bit copy).
void cuda_strided_copy(void* dst, const void* src, DType dtype, int ndim, const int64_t* shape,
                       const int64_t* src_strides);
// dst[i] <- src[i] converted, n contiguous elements; F32/F16/BF16/I64 either side, float narrowing rounds to
// nearest even exactly like core/half.h (NaN -> canonical quiet NaN), I64 -> float rounds, float -> I64 truncates.
void cuda_convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n);
// dst[i] <- counter_random::normal(base, i) * scale + offset, rounded to `dtype` (F32/F16/BF16), n contiguous
// elements: random weights made on the device (core/counter_random.h).
void cuda_fill_counter_normal(void* dst, DType dtype, int64_t n, uint64_t base, float scale, float offset);

// Op timing for core/op_profile.h: cuda_timer_mark() records an event on the backend's stream and returns its
// index; cuda_timer_elapsed_ms(a, b) waits for event b and returns the time between two marks;
// cuda_timer_reset() forgets all marks (the events are kept for reuse).
int cuda_timer_mark();
double cuda_timer_elapsed_ms(int a, int b);
void cuda_timer_reset();

}  // namespace sdxl::device
