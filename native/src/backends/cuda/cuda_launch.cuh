// The one way every kernel of the backend is launched, so that the same .cu sources run on a GPU and on the
// CPU SIMT emulator (emulator/emu_simt.h, CI without a GPU):
//   launch(kernel, grid, block, dynamic_smem_bytes, args...)  on sdxl::cuda::stream(); the caller checks
//   cudaGetLastError() afterwards as after any launch.
// Under nvcc it is a plain <<<>>> launch. In the emulator build the .cu files are compiled as host C++ and
// the launch runs the grid's blocks one after another, each block's threads as concurrent fibers.
//
// Dynamic shared memory is declared through SDXL_DYNAMIC_SHARED(T, name) (an `extern __shared__ T name[]` on
// the device) so that the emulator can hand each block its own buffer.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "backends/cuda/cuda_context.cuh"
#include "core/op_profile.h"

#if defined(SDXL_CUDA_EMULATOR)
#include "backends/cuda/emulator/emu_simt.h"
#define SDXL_DYNAMIC_SHARED(T, name) T* name = ::sdxl_emu::dynamic_shared<T>()
#else
#define SDXL_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

namespace sdxl::cuda {

template <typename... Params, typename... Args>
inline void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Args&&... args) {
    profile::count_device_call();
#if defined(SDXL_CUDA_EMULATOR)
    ::sdxl_emu::launch(kernel, grid, block, smem, stream(), std::forward<Args>(args)...);
#else
    kernel<<<grid, block, smem, stream()>>>(std::forward<Args>(args)...);
#endif
}

}  // namespace sdxl::cuda
