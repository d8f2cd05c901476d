#include "nn/layers.h"

#include "ops/ops.h"

namespace sdxl::nn {

Linear::Linear(const WeightBuilder& vb, int64_t in, int64_t out, bool bias)
    : w_(vb.get("weight", {out, in})), b_(bias ? vb.get("bias", {out}) : Tensor()), in_(in), out_(out) {}

Tensor Linear::operator()(const Tensor& x, const Tensor& residual) const { return ops::linear(x, w_, b_, residual); }

Conv2d::Conv2d(const WeightBuilder& vb, int64_t in, int64_t out, int kernel, int stride, int padding, bool bias)
    : w_(vb.get("weight", {out, in, kernel, kernel})), b_(bias ? vb.get("bias", {out}) : Tensor()),
      stride_(stride), padding_(padding) {}

Tensor Conv2d::operator()(const Tensor& x) const { return ops::conv2d(x, w_, b_, stride_, padding_); }

Tensor Conv2d::operator()(const Tensor& x, const Tensor& sample_bias, const Tensor& residual) const {
    return ops::conv2d_fused(x, w_, b_, stride_, padding_, sample_bias, residual);
}

GroupNorm::GroupNorm(const WeightBuilder& vb, int64_t groups, int64_t channels, float eps)
    : w_(vb.get("weight", {channels})), b_(vb.get("bias", {channels})), groups_(int(groups)), eps_(eps) {}

Tensor GroupNorm::operator()(const Tensor& x) const { return ops::group_norm(x, groups_, w_, b_, eps_); }

Tensor GroupNorm::with_silu(const Tensor& x) const { return ops::group_norm_silu(x, groups_, w_, b_, eps_); }

LayerNorm::LayerNorm(const WeightBuilder& vb, int64_t dim, float eps)
    : w_(vb.get("weight", {dim})), b_(vb.get("bias", {dim})), eps_(eps) {}

Tensor LayerNorm::operator()(const Tensor& x) const { return ops::layer_norm(x, w_, b_, eps_); }

}  // namespace sdxl::nn
