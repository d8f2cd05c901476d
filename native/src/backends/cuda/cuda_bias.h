// Bias broadcast for GEMM / conv outputs (cuda_bias.cu), queued on cuda::stream().
#pragma once

#include <cstddef>
#include <cstdint>

namespace sdxl::cuda {

// y [outer, channels, inner] (contiguous) = b [channels] broadcast; elem_size is 2 or 4 bytes (any dtype: a copy).
void fill_bias(void* y, const void* b, size_t elem_size, int64_t outer, int64_t channels, int64_t inner);

}  // namespace sdxl::cuda
