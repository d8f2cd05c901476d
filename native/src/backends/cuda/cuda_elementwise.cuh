// Params structs and launchers of the elementwise kernels (F32/F16/BF16 storage, float math). The op table
// (cuda_elementwise_ops.cpp) calls these; broadcasting is done by strides so no operand is materialised.
// Plain C++ (no CUDA types). Every launch runs on sdxl::cuda::stream().
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace sdxl::cuda {

constexpr int kMaxDims = 8;

// out[i] = a[ia(i)] (op) b[ib(i)] over `ndim` dims of `shape` (out contiguous), with element strides per
// operand (stride 0 on a broadcast dimension). a, b and out share `dtype`. The launcher merges dims first.
struct BinaryParams {
    const void* a;
    const void* b;
    void* out;
    DType dtype;
    int64_t numel;
    int ndim;
    int64_t shape[kMaxDims];
    int64_t a_strides[kMaxDims];
    int64_t b_strides[kMaxDims];
};

enum class BinaryOp { ADD, SUB, MUL };

void launch_binary(const BinaryParams& p, BinaryOp op);

// out[i] = f(x[i]) over n contiguous elements of `dtype` (x and out may be the same buffer).
enum class UnaryOp {
    SCALE,       // alpha * x + beta
    SILU,        // x / (1 + e^-x)
    GELU,        // 0.5 x (1 + erf(x / sqrt 2))
    GELU_TANH,   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    QUICK_GELU,  // x / (1 + e^(-1.702 x))
};

struct UnaryParams {
    const void* x;
    void* out;
    DType dtype;
    int64_t n;
    float alpha = 1.0f, beta = 0.0f;  // SCALE only
};

void launch_unary(const UnaryParams& p, UnaryOp op);

// x [rows, 2d] contiguous -> out [rows, d]: out = x[:, :d] * gelu(x[:, d:])  (diffusers GEGLU chunk order).
struct GegluParams {
    const void* x;
    void* out;
    DType dtype;
    int64_t rows, d;
};

void launch_geglu(const GegluParams& p);

}  // namespace sdxl::cuda
