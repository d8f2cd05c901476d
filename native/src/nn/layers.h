// The basic layers, each built from a WeightBuilder scoped at the layer (diffusers/transformers key names:
// "weight", "bias") and run through ops/. Shapes in comments are outermost first.
#pragma once

#include "core/tensor.h"
#include "nn/weights.h"

namespace sdxl::nn {

// torch.nn.Linear: weight [out, in], bias [out] (optional).
class Linear {
public:
    Linear() = default;
    Linear(const WeightBuilder& vb, int64_t in, int64_t out, bool bias = true);
    // [..., in] -> [..., out]; + residual [..., out] when given, fused into the GEMM where the backend can
    // (on the cpu bit for bit ops::add(residual, linear(x))).
    Tensor operator()(const Tensor& x, const Tensor& residual = Tensor()) const;
    int64_t in_features() const { return in_; }
    const Tensor& weight() const { return w_; }  // [out, in]
    const Tensor& bias() const { return b_; }    // [out] or undefined
    int64_t out_features() const { return out_; }

private:
    Tensor w_, b_;
    int64_t in_ = 0, out_ = 0;
};

// torch.nn.Conv2d with square kernel, symmetric padding: weight [out, in, k, k], bias [out].
class Conv2d {
public:
    Conv2d() = default;
    Conv2d(const WeightBuilder& vb, int64_t in, int64_t out, int kernel, int stride = 1, int padding = 0,
           bool bias = true);
    Tensor operator()(const Tensor& x) const;  // [N, in, H, W] -> [N, out, H', W']
    // this(x) + sample_bias [N, out] per (n, channel) + residual [N, out, H', W'] in one op (ops::conv2d_fused);
    // either term may be undefined.
    Tensor operator()(const Tensor& x, const Tensor& sample_bias, const Tensor& residual) const;

private:
    Tensor w_, b_;
    int stride_ = 1, padding_ = 0;
};

// torch.nn.GroupNorm(groups, channels, eps, affine=True): weight [C], bias [C].
class GroupNorm {
public:
    GroupNorm() = default;
    GroupNorm(const WeightBuilder& vb, int64_t groups, int64_t channels, float eps);
    Tensor operator()(const Tensor& x) const;  // [N, C, *]
    Tensor with_silu(const Tensor& x) const;   // silu(this(x)) in one op (ops::group_norm_silu), [N, C, *]

private:
    Tensor w_, b_;
    int groups_ = 1;
    float eps_ = 1e-5f;
};

// torch.nn.LayerNorm(dim, eps): weight [D], bias [D].
class LayerNorm {
public:
    LayerNorm() = default;
    LayerNorm(const WeightBuilder& vb, int64_t dim, float eps);
    Tensor operator()(const Tensor& x) const;  // [..., D]

private:
    Tensor w_, b_;
    float eps_ = 1e-5f;
};

}  // namespace sdxl::nn
