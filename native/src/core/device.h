// The few device services the core needs from the CUDA backend: memory and copies.
// Implemented in backends/cuda/cuda_device.cu when built with CUDA, else by backends/cuda/no_cuda.cpp,
// whose functions report UNSUPPORTED. A build with CUDA still runs on a machine without a driver:
// cuda_available() is then false and nothing else here is called.
#pragma once

#include <cstddef>
#include <string>

namespace sdxl::device {

bool cuda_compiled();          // built with the CUDA backend
bool cuda_available();         // compiled in and a usable device exists
std::string cuda_status();     // one line for logs: devices found, or why none
void* cuda_malloc(size_t nbytes);
void cuda_free(void* ptr) noexcept;
void copy_host_to_device(void* dst, const void* src, size_t nbytes);
void copy_device_to_host(void* dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);

}  // namespace sdxl::device
