// Shared between the SIMT emulator (emu_simt.cpp) and the fake runtime (emu_runtime.cpp); not for kernels.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <mutex>
#include <string>

namespace sdxl_emu {

// The device's one execution lock: kernels, copies and the fake libraries' work run one at a time, in issue
// order, as on a single in-order stream.
std::recursive_mutex& device_lock();

// Records a failed launch or call: `code` is what cudaGetLastError returns next (and, for sticky errors, what
// every later call returns until reset_device()), `message` its cudaGetErrorString text.
void set_error(cudaError_t code, const std::string& message, bool sticky);

// The sticky error, or cudaSuccess.
cudaError_t sticky_error();

// The legacy/per-thread default streams, or a stream created and not destroyed.
bool stream_valid(cudaStream_t stream);

// Per-kernel dynamic shared memory limit set with cudaFuncAttributeMaxDynamicSharedMemorySize (default 48 KB).
size_t max_dynamic_smem(const void* kernel);
void set_max_dynamic_smem(const void* kernel, size_t bytes);

constexpr size_t kDefaultSmem = 48 * 1024;   // without the opt-in
constexpr size_t kOptinSmem = 227 * 1024;    // sm_90: cudaDevAttrMaxSharedMemoryPerBlockOptin = 232448

// Checks every allocation's redzone (bytes written past the end of a device allocation by a kernel);
// on damage records a sticky cudaErrorIllegalAddress naming the allocation and returns false.
bool check_redzones();

}  // namespace sdxl_emu
