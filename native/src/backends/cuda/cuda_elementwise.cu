#include <cuda_runtime.h>

#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_elementwise.cuh"

namespace sdxl::cuda {

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
    int64_t b = (n + kThreads - 1) / kThreads;
    return unsigned(b < 65535 * 16 ? b : 65535 * 16);  // grid-stride loops cover the rest
}

template <BinaryOp Op>
__global__ void binary_kernel(BinaryParams p) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.numel;
         i += int64_t(gridDim.x) * blockDim.x) {
        int64_t rem = i, ia = 0, ib = 0;
        for (int d = p.ndim - 1; d >= 0; --d) {
            int64_t idx = rem % p.shape[d];
            rem /= p.shape[d];
            ia += idx * p.a_strides[d];
            ib += idx * p.b_strides[d];
        }
        float x = p.a[ia], y = p.b[ib];
        p.out[i] = Op == BinaryOp::ADD ? x + y : Op == BinaryOp::SUB ? x - y : x * y;
    }
}

__global__ void scale_kernel(const float* x, float* out, int64_t n, float alpha, float beta) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = alpha * x[i] + beta;
}

__global__ void silu_kernel(const float* x, float* out, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float v = x[i];
        out[i] = v / (1.0f + expf(-v));
    }
}

}  // namespace

void launch_binary(const BinaryParams& p, BinaryOp op) {
    if (p.numel == 0) return;
    switch (op) {
        case BinaryOp::ADD: binary_kernel<BinaryOp::ADD><<<blocks_for(p.numel), kThreads, 0, stream()>>>(p); break;
        case BinaryOp::SUB: binary_kernel<BinaryOp::SUB><<<blocks_for(p.numel), kThreads, 0, stream()>>>(p); break;
        case BinaryOp::MUL: binary_kernel<BinaryOp::MUL><<<blocks_for(p.numel), kThreads, 0, stream()>>>(p); break;
    }
    SDXL_CUDA_CHECK(cudaGetLastError());
}

void launch_scale(const float* x, float* out, int64_t n, float alpha, float beta) {
    if (n == 0) return;
    scale_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x, out, n, alpha, beta);
    SDXL_CUDA_CHECK(cudaGetLastError());
}

void launch_silu(const float* x, float* out, int64_t n) {
    if (n == 0) return;
    silu_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x, out, n);
    SDXL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sdxl::cuda
