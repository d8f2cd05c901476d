// The bias fill shared by linear's cuBLAS fallback (cuda_gemm.cpp) and conv2d (cuda_conv.cpp): the output starts as the
// broadcast bias and the GEMM / convolution accumulates onto it (beta = 1), as the CPU backend does, so the
// bias is added in fp32 inside the library's epilogue with a single rounding to the output dtype.
#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/cuda_bias.h"
#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_kernel_util.cuh"
#include "backends/cuda/cuda_launch.cuh"

namespace sdxl::cuda {

namespace {

// y[(o * channels + c) * inner + i] = b[c]; T is the raw element (the dtypes of y and b match).
template <typename T>
__global__ void fill_bias_kernel(T* __restrict__ y, const T* __restrict__ b, int64_t channels, int64_t inner,
                                 int64_t total) {
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += int64_t(gridDim.x) * blockDim.x) {
        y[idx] = b[(idx / inner) % channels];
    }
}

template <typename T>
void launch_fill(void* y, const void* b, int64_t channels, int64_t inner, int64_t total) {
    const int threads = 256;
    const int64_t want = (total + threads - 1) / threads;
    const int blocks = int(want < 65535 * 8 ? want : 65535 * 8);
    launch(fill_bias_kernel<T>, blocks, threads, 0, static_cast<T*>(y), static_cast<const T*>(b), channels, inner,
           total);
    SDXL_CUDA_CHECK(cudaGetLastError());
}

// y[n, c, i] = residual[n, c, i] + b[c] + sample_bias[n, c], summed in fp32 and rounded once; absent terms
// (null) are skipped. All contiguous, one dtype T. 32-bit index math when the sizes allow (most launches).
template <typename T, typename Index>
__global__ void fill_epilogue_kernel(T* __restrict__ y, const T* __restrict__ residual, const T* __restrict__ b,
                                     const T* __restrict__ sample_bias, Index channels, Index inner, Index total) {
    for (Index idx = Index(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += Index(gridDim.x) * blockDim.x) {
        const Index nc = idx / inner;  // n * channels + c
        float v = residual ? load_f(residual + idx) : 0.0f;
        if (b) v += load_f(b + nc % channels);
        if (sample_bias) v += load_f(sample_bias + nc);
        store_f(y + idx, v);
    }
}

}  // namespace

void fill_epilogue(void* y, DType dtype, const void* residual, const void* b, const void* sample_bias, int64_t outer,
                   int64_t channels, int64_t inner) {
    const int64_t total = outer * channels * inner;
    if (total <= 0) return;
    dispatch_float(dtype, "conv2d epilogue", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const unsigned blocks = grid_for(total);
        if (total < (int64_t(1) << 31)) {
            launch(fill_epilogue_kernel<T, uint32_t>, blocks, kThreads, 0, static_cast<T*>(y),
                   static_cast<const T*>(residual), static_cast<const T*>(b), static_cast<const T*>(sample_bias),
                   uint32_t(channels), uint32_t(inner), uint32_t(total));
        } else {
            launch(fill_epilogue_kernel<T, int64_t>, blocks, kThreads, 0, static_cast<T*>(y),
                   static_cast<const T*>(residual), static_cast<const T*>(b), static_cast<const T*>(sample_bias),
                   channels, inner, total);
        }
        SDXL_CUDA_CHECK(cudaGetLastError());
    });
}

void fill_bias(void* y, const void* b, size_t elem_size, int64_t outer, int64_t channels, int64_t inner) {
    const int64_t total = outer * channels * inner;
    if (total <= 0) return;
    switch (elem_size) {
        case 4: launch_fill<uint32_t>(y, b, channels, inner, total); break;
        case 2: launch_fill<uint16_t>(y, b, channels, inner, total); break;
        default: fail(ErrorCode::INTERNAL, "fill_bias: unexpected element size ", elem_size);
    }
}

}  // namespace sdxl::cuda
