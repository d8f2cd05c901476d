// Params structs and launchers of the normalisation kernels: group_norm (+ optional fused SiLU), layer_norm,
// softmax. Storage F32/F16/BF16, statistics and math in float (the cross-chunk combination of group_norm in
// double). Plain C++ except group_norm_silu's Tensor signature. Every launch runs on sdxl::cuda::stream().
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace sdxl::cuda {

// x [n, c, spatial] contiguous -> y, statistics per (n, group) over c/groups channels x spatial (biased
// variance, eps inside the square root, as torch). gamma/beta [c] or null. silu: y = silu(norm(x)) in one pass.
struct GroupNormParams {
    const void* x;
    void* y;
    const void* gamma;  // may be null
    const void* beta;   // may be null
    DType dtype;        // of x, y, gamma, beta
    int64_t n, c, spatial;
    int groups;
    float eps;
    bool silu = false;
};
// Allocates its small statistics workspace on the device (freed stream-ordered when it returns).
void launch_group_norm(const GroupNormParams& p);

// x [rows, d] contiguous -> y over the last dim; gamma/beta [d] or null.
struct LayerNormParams {
    const void* x;
    void* y;
    const void* gamma;
    const void* beta;
    DType dtype;
    int64_t rows, d;
    float eps;
};
void launch_layer_norm(const LayerNormParams& p);

// x [rows, d] contiguous -> y = softmax over the last dim, max-subtracted (a row of all -inf gives NaN, as torch).
struct SoftmaxParams {
    const void* x;
    void* y;
    DType dtype;
    int64_t rows, d;
};
void launch_softmax(const SoftmaxParams& p);

// silu(group_norm(x)) in one kernel pass over the output: the backend's ops::group_norm_silu (the UNet/VAE
// resnet blocks). Same contract as ops::group_norm followed by ops::silu; x on CUDA, F32/F16/BF16; checks
// its own arguments, so it may also be called directly.
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);

}  // namespace sdxl::cuda
