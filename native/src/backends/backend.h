// The backend registry: one table of op implementations per device. A null entry means the backend
// does not support the op; ops/ then reports UNSUPPORTED naming the op and the device. Arguments reach
// a backend already validated by ops/ (shapes, dtypes, devices agree), so backends only compute.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace sdxl {

struct Backend {
    const char* name;
    // residual: undefined, or exactly the output's shape (any strides): y = x w^T + b + residual.
    Tensor (*linear)(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual) = nullptr;
    Tensor (*matmul)(const Tensor& a, const Tensor& b) = nullptr;  // a [B, M, K], b [B, K, N] (B may be broadcast 1)
    Tensor (*conv2d)(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding) = nullptr;
    // conv2d + sample_bias [N, O] per (n, o) + residual [N, O, Ho, Wo] (either may be undefined) in one pass;
    // null: ops/ composes conv2d and add (the CPU backend, bit for bit the unfused sums).
    Tensor (*conv2d_fused)(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding,
                           const Tensor& sample_bias, const Tensor& residual) = nullptr;
    Tensor (*upsample_nearest)(const Tensor& x, int64_t out_h, int64_t out_w) = nullptr;
    Tensor (*group_norm)(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) = nullptr;
    Tensor (*group_norm_silu)(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta,
                              float eps) = nullptr;
    Tensor (*layer_norm)(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) = nullptr;
    Tensor (*silu)(const Tensor& x) = nullptr;
    Tensor (*gelu)(const Tensor& x) = nullptr;
    Tensor (*gelu_tanh)(const Tensor& x) = nullptr;
    Tensor (*quick_gelu)(const Tensor& x) = nullptr;
    Tensor (*geglu)(const Tensor& x) = nullptr;
    Tensor (*softmax)(const Tensor& x) = nullptr;
    Tensor (*attention)(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                        float scale) = nullptr;
    // Broadcasting binary ops: out_shape is the broadcast shape computed by ops/.
    Tensor (*add)(const Tensor& a, const Tensor& b, const Shape& out_shape) = nullptr;
    Tensor (*sub)(const Tensor& a, const Tensor& b, const Shape& out_shape) = nullptr;
    Tensor (*mul)(const Tensor& a, const Tensor& b, const Shape& out_shape) = nullptr;
    Tensor (*scale)(const Tensor& x, float alpha, float beta) = nullptr;
    Tensor (*concat)(const std::vector<Tensor>& parts, int dim) = nullptr;  // dim already normalised
    Tensor (*timestep_embedding)(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                                 float scale, float max_period) = nullptr;
};

const Backend& cpu_backend();   // backends/cpu/cpu_backend.cpp: complete, the reference
const Backend& cuda_backend();  // backends/cuda/cuda_backend.cpp: partial (see its table)
const Backend& backend_for(Device device);

}  // namespace sdxl
