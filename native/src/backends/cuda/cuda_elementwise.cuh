// Params structs and launchers of the first CUDA kernels (elementwise, F32). The backend table
// (cuda_backend.cpp) calls these; broadcasting is done by strides so no operand is materialised.
#pragma once

#include <cstdint>

namespace sdxl::cuda {

constexpr int kMaxDims = 8;

// out[i] = a[ia(i)] (op) b[ib(i)] over `ndim` dims of `shape`, with element strides per operand
// (stride 0 on a broadcast dimension).
struct BinaryParams {
    const float* a;
    const float* b;
    float* out;
    int64_t numel;
    int ndim;
    int64_t shape[kMaxDims];
    int64_t a_strides[kMaxDims];
    int64_t b_strides[kMaxDims];
};

enum class BinaryOp { ADD, SUB, MUL };

void launch_binary(const BinaryParams& p, BinaryOp op);
// out = alpha * x + beta over n contiguous floats.
void launch_scale(const float* x, float* out, int64_t n, float alpha, float beta);
// out = x * sigmoid(x) over n contiguous floats.
void launch_silu(const float* x, float* out, int64_t n);

}  // namespace sdxl::cuda
