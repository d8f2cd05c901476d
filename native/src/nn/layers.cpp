#include "nn/layers.h"

#include "ops/ops.h"

namespace sdxl::nn {

const std::shared_ptr<AdapterSlot>& unattached_slot() {
    static const std::shared_ptr<AdapterSlot> slot = std::make_shared<AdapterSlot>();
    return slot;
}

Tensor linear_adapter(const Adapter& a, const Tensor& x, const Tensor& residual) {
    Tensor acc = residual;
    if (a.up.defined()) acc = ops::linear(ops::linear(x, a.down, Tensor()), a.up, Tensor(), acc);  // [..., R] -> [..., out]
    if (a.dense.defined()) acc = ops::linear(x, a.dense, Tensor(), acc);                          // [..., out]
    return acc;
}

Tensor conv_adapter(const Adapter& a, const Tensor& x, int stride, int padding, const Tensor& residual) {
    Tensor acc = residual;
    if (a.up.defined()) {
        const Tensor h = ops::conv2d(x, a.down, Tensor(), stride, padding);  // [N, R, H', W']
        acc = ops::conv2d_fused(h, a.up, Tensor(), 1, 0, Tensor(), acc);    // [N, out, H', W']
    }
    if (a.dense.defined()) acc = ops::conv2d_fused(x, a.dense, Tensor(), stride, padding, Tensor(), acc);
    return acc;
}

Linear::Linear(const WeightBuilder& vb, int64_t in, int64_t out, bool bias)
    : w_(vb.get("weight", {out, in})), b_(bias ? vb.get("bias", {out}) : Tensor()), in_(in), out_(out),
      slot_(vb.adapter_slot()) {}

Tensor Linear::operator()(const Tensor& x, const Tensor& residual) const {
    const Adapter* a = slot_->get();
    return ops::linear(x, w_, b_, a ? linear_adapter(*a, x, residual) : residual);
}

Conv2d::Conv2d(const WeightBuilder& vb, int64_t in, int64_t out, int kernel, int stride, int padding, bool bias)
    : w_(vb.get("weight", {out, in, kernel, kernel})), b_(bias ? vb.get("bias", {out}) : Tensor()),
      stride_(stride), padding_(padding), slot_(vb.adapter_slot()) {}

Tensor Conv2d::operator()(const Tensor& x) const {
    if (const Adapter* a = slot_->get())
        return ops::conv2d_fused(x, w_, b_, stride_, padding_, Tensor(), conv_adapter(*a, x, stride_, padding_, Tensor()));
    return ops::conv2d(x, w_, b_, stride_, padding_);
}

Tensor Conv2d::operator()(const Tensor& x, const Tensor& sample_bias, const Tensor& residual) const {
    const Adapter* a = slot_->get();
    return ops::conv2d_fused(x, w_, b_, stride_, padding_, sample_bias,
                             a ? conv_adapter(*a, x, stride_, padding_, residual) : residual);
}

GroupNorm::GroupNorm(const WeightBuilder& vb, int64_t groups, int64_t channels, float eps)
    : w_(vb.get("weight", {channels})), b_(vb.get("bias", {channels})), groups_(int(groups)), eps_(eps) {}

Tensor GroupNorm::operator()(const Tensor& x) const { return ops::group_norm(x, groups_, w_, b_, eps_); }

Tensor GroupNorm::with_silu(const Tensor& x) const { return ops::group_norm_silu(x, groups_, w_, b_, eps_); }

LayerNorm::LayerNorm(const WeightBuilder& vb, int64_t dim, float eps)
    : w_(vb.get("weight", {dim})), b_(vb.get("bias", {dim})), eps_(eps) {}

Tensor LayerNorm::operator()(const Tensor& x) const { return ops::layer_norm(x, w_, b_, eps_); }

}  // namespace sdxl::nn
