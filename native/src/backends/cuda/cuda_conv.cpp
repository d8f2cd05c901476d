// CUDA conv2d (cuDNN): not implemented yet; the entries stay null and ops/ reports UNSUPPORTED.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"

namespace sdxl::cuda {

void register_conv_ops(Backend&) {}

}  // namespace sdxl::cuda
