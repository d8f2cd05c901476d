// Emulator build only (this folder is first on the include path there): what <cuda_runtime.h> gives CUDA
// code, for host C++. The runtime API's types and C declarations come from the toolkit (cuda_runtime_api.h),
// implemented by the fake runtime (../emu_runtime.cpp); the kernel language (qualifiers, threadIdx, barriers,
// warp collectives, the launch) comes from ../emu_simt.h; the 16-bit float types from our cuda_fp16.h /
// cuda_bf16.h beside this file.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "backends/cuda/emulator/emu_simt.h"
