// CUDA attention: not implemented yet; the entries stay null and ops/ reports UNSUPPORTED.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"

namespace sdxl::cuda {

void register_attention_ops(Backend&) {}

}  // namespace sdxl::cuda
