// The CUDA backend table: each op family fills its own entries (see cuda_context.cuh). A null entry means
// the op is not implemented on CUDA; ops/ then reports UNSUPPORTED naming the op.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"

namespace sdxl {

const Backend& cuda_backend() {
    static const Backend table = [] {
        Backend b{"cuda"};
        cuda::register_elementwise_ops(b);
        cuda::register_norm_ops(b);
        cuda::register_gemm_ops(b);
        cuda::register_conv_ops(b);
        cuda::register_attention_ops(b);
        return b;
    }();
    return table;
}

}  // namespace sdxl
