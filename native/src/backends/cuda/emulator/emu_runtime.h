// The emulated device's services for code outside the kernels: the fake CUDA runtime (emu_runtime.cpp), the
// fake cuBLAS / cuBLASLt / cuDNN libraries (fake_cublas.cpp, fake_cublaslt.cpp, fake_cudnn.cpp) and the emulator's
// own tests. All of it lives in libsdxl_emu_cudart.so, which the emulator build of libsdxl and the fake libraries
// link against, so that they share one table of device allocations.
//
// Device memory is host memory handed out by the fake cudaMalloc and tracked: every pointer the backend passes
// where a device pointer belongs can be checked against the live allocations (host pointers, ranges that run
// past an allocation, and freed blocks are reported), and copies check their cudaMemcpyKind.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace sdxl_emu {

// Whether [p, p + bytes) lies inside one live device allocation. When not, *why (if given) says what p is:
// a host pointer, a freed block (with its size), or how far the range runs past the allocation's end.
// bytes == 0 checks only that p is inside (or one past the end of) a live allocation, or null.
bool device_range_ok(const void* p, size_t bytes, std::string* why = nullptr);

// Records an error of the emulated device (a fake library's bad pointer, a kernel fault): it is printed to
// stderr once, and the next cudaGetLastError() returns `code` (a cudaError_t value) with this message as its
// cudaGetErrorString text.
void report_device_error(int code, const std::string& message);

// Device capacity in bytes (default 80 GiB, as an H100; SDXL4J_EMU_DEVICE_BYTES overrides at start). cudaMalloc
// beyond it fails with cudaErrorMemoryAllocation, so out-of-memory handling can be tested.
void set_device_capacity(size_t bytes);
size_t device_capacity();
size_t device_bytes_in_use();  // live allocations, in bytes as requested

// Clears a sticky error (a kernel fault, an illegal address) so that a test can go on after provoking one.
// On a GPU such an error lasts until the process ends.
void reset_device();

// Work issued to `stream` by the fake runtime, the SIMT launcher and the fake libraries: run now, or, while the
// stream captures a graph (cudaStreamBeginCapture), recorded as a node that each cudaGraphLaunch runs again, in
// capture order. `work` must therefore hold copies of its arguments (host scalars by value). Work on the legacy
// stream while a blocking stream captures fails with cudaErrorStreamCaptureImplicit and invalidates that capture;
// work on a stream whose capture was invalidated fails with cudaErrorStreamCaptureInvalidated. Returns
// cudaSuccess or the error (also what the next cudaGetLastError() returns).
cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<cudaError_t()> work);

// Whether `stream` is capturing now (a fake library uses it to decide whether it may allocate).
bool stream_capturing(cudaStream_t stream);

// Graphs launched so far (cudaGraphLaunch) and nodes they ran: tests check that a replay really was one.
uint64_t graph_launches();
uint64_t graph_nodes_run();

}  // namespace sdxl_emu
