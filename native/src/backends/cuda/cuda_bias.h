// Bias broadcast for GEMM / conv outputs (cuda_bias.cu), queued on cuda::stream().
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace sdxl::cuda {

// y [outer, channels, inner] (contiguous) = b [channels] broadcast; elem_size is 2 or 4 bytes (any dtype: a copy).
void fill_bias(void* y, const void* b, size_t elem_size, int64_t outer, int64_t channels, int64_t inner);

// The fused epilogue of conv2d_fused, as the start value the convolution accumulates onto (beta = 1):
// y [outer, channels, inner] = residual [outer, channels, inner] + b [channels] + sample_bias [outer, channels],
// each term optional (null), summed in fp32 and rounded once to `dtype` (F32/F16/BF16). All contiguous.
void fill_epilogue(void* y, DType dtype, const void* residual, const void* b, const void* sample_bias, int64_t outer,
                   int64_t channels, int64_t inner);

}  // namespace sdxl::cuda
