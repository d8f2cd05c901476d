// The basic layers, each built from a WeightBuilder scoped at the layer (diffusers/transformers key names:
// "weight", "bias") and run through ops/. Shapes in comments are outermost first.
#pragma once

#include "core/tensor.h"
#include "nn/weights.h"

namespace sdxl::nn {

// The run-time adapters' part of a layer's output (see Adapter), plus `residual` (undefined: none), summed in the
// adapters' GEMM / convolution epilogues: up(down(x)) + dense(x) + residual.
// Linear: x [..., in] -> [..., out]; conv: x [N, in, H, W] -> [N, out, H', W'] (down and dense with the layer's
// stride and padding, up 1x1).
Tensor linear_adapter(const Adapter& a, const Tensor& x, const Tensor& residual);
Tensor conv_adapter(const Adapter& a, const Tensor& x, int stride, int padding, const Tensor& residual);

// A slot no overlay sets: what default-constructed layers point at, so that a layer's forward checks one pointer.
const std::shared_ptr<AdapterSlot>& unattached_slot();

// torch.nn.Linear: weight [out, in], bias [out] (optional). Run-time adapters (AdapterSlot) add their part in the
// GEMM's epilogue.
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
    const std::shared_ptr<AdapterSlot>& adapter_slot() const { return slot_; }

private:
    Tensor w_, b_;
    int64_t in_ = 0, out_ = 0;
    std::shared_ptr<AdapterSlot> slot_ = unattached_slot();
};

// torch.nn.Conv2d with square kernel, symmetric padding: weight [out, in, k, k], bias [out]. Run-time adapters as
// Linear's, as the convolution's residual.
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
    std::shared_ptr<AdapterSlot> slot_ = unattached_slot();
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
