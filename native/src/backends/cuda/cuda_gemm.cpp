// CUDA linear, matmul (cuBLAS/cuBLASLt): not implemented yet; the entries stay null and ops/ reports UNSUPPORTED.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"

namespace sdxl::cuda {

void register_gemm_ops(Backend&) {}

}  // namespace sdxl::cuda
