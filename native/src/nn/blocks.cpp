// diffusers v0.31 building blocks (see blocks.h for the key names). Dropout is inference-only identity and
// is left out; every output_scale_factor / rescale_output_factor SDXL uses is 1.
#include "nn/blocks.h"

#include <cmath>
#include <cstring>

#include "core/op_profile.h"
#include "ops/ops.h"

namespace sdxl::nn {

namespace {

void need_dims(const char* block, const char* name, const Tensor& t, int dims, const char* layout) {
    SDXL_CHECK(t.defined(), block, ": ", name, " is undefined");
    SDXL_CHECK(t.dim() == dims, block, ": ", name, " must be ", layout, ", got ", t.describe());
}

// torch F.pad(x, (0, 1, 0, 1)): one zero column on the right and one zero row at the bottom.
// x [N, C, H, W] -> [N, C, H+1, W+1]
Tensor pad_right_bottom(const Tensor& x) {
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    if (x.device() != Device::CPU || x.dtype() != DType::F32) {
        // Any device/dtype: two concats with zero tensors (ops only).
        const Tensor col = Tensor::zeros({N, C, H, 1}, x.dtype(), x.device());
        const Tensor wide = ops::concat({x, col}, 3);                                // [N, C, H, W+1]
        const Tensor row = Tensor::zeros({N, C, 1, W + 1}, x.dtype(), x.device());
        return ops::concat({wide, row}, 2);                                          // [N, C, H+1, W+1]
    }
    // CPU F32: one zero-filled copy.
    const Tensor xc = x.contiguous();
    Tensor y = Tensor::zeros({N, C, H + 1, W + 1}, DType::F32);
    if (y.numel() == 0 || xc.numel() == 0) return y;
    const float* src = xc.data<float>();
    float* dst = y.data<float>();
    const int64_t planes = N * C;
    for (int64_t p = 0; p < planes; ++p) {
        for (int64_t h = 0; h < H; ++h) {
            std::memcpy(dst + (p * (H + 1) + h) * (W + 1), src + (p * H + h) * W, size_t(W) * sizeof(float));
        }
    }
    return y;
}

}  // namespace

// ---------------------------------------------------------------------------------------- ResnetBlock2D

ResnetBlock2D::ResnetBlock2D(const WeightBuilder& vb, int64_t in, int64_t out, int64_t temb_channels, int64_t groups,
                             float eps)
    : norm1_(vb.pp("norm1"), groups, in, eps),
      norm2_(vb.pp("norm2"), groups, out, eps),
      conv1_(vb.pp("conv1"), in, out, 3, 1, 1),
      conv2_(vb.pp("conv2"), out, out, 3, 1, 1),
      has_temb_(temb_channels > 0),
      has_shortcut_(in != out) {
    if (has_temb_) time_emb_proj_ = Linear(vb.pp("time_emb_proj"), temb_channels, out);
    if (has_shortcut_) shortcut_ = Conv2d(vb.pp("conv_shortcut"), in, out, 1, 1, 0);
}

Tensor ResnetBlock2D::operator()(const Tensor& x, const Tensor& temb) const {
    need_dims("ResnetBlock2D", "x", x, 4, "[N, C, H, W]");
    SDXL_CHECK(!has_temb_ || temb.defined(), "ResnetBlock2D: the block has time_emb_proj but temb is undefined");
    SDXL_CHECK(has_temb_ || !temb.defined(), "ResnetBlock2D: temb ", temb.defined() ? temb.describe() : "",
               " given but the block was built with temb_channels 0");
    Tensor t;  // the time embedding, added per (n, channel) in conv1's epilogue
    if (has_temb_) {
        need_dims("ResnetBlock2D", "temb", temb, 2, "[N, T]");
        t = time_emb_proj_(ops::silu(temb));  // [N, out]
    }
    const Tensor h = conv1_(norm1_.with_silu(x), t, Tensor());  // [N, in, H, W] -> [N, out, H, W]
    // out = shortcut(x) + conv2(...), the residual added in conv2's epilogue
    return conv2_(norm2_.with_silu(h), Tensor(), has_shortcut_ ? shortcut_(x) : x);  // [N, out, H, W]
}

// ---------------------------------------------------------------------------------------- Attention

Attention::Attention(const WeightBuilder& vb, int64_t query_dim, int64_t context_dim, int64_t heads,
                     int64_t head_dim, bool bias)
    : heads_(heads), head_dim_(head_dim) {
    SDXL_CHECK(heads >= 1 && head_dim >= 1, "Attention ", vb.prefix(), ": heads and head_dim must be >= 1, got ",
               heads, " and ", head_dim);
    const int64_t inner = heads * head_dim;
    const int64_t kv_dim = context_dim > 0 ? context_dim : query_dim;  // <= 0: self-attention only
    to_q_ = Linear(vb.pp("to_q"), query_dim, inner, bias);
    to_k_ = Linear(vb.pp("to_k"), kv_dim, inner, bias);
    to_v_ = Linear(vb.pp("to_v"), kv_dim, inner, bias);
    to_out_ = Linear(vb.pp("to_out").pp(0), inner, query_dim, true);
    // (A count-only profile builds the CUDA structure too, so that it counts what a CUDA step runs.)
    if (context_dim <= 0 && (vb.placement().device == Device::CUDA || profile::dry_run())) {
        qkv_w_ = ops::concat({to_q_.weight(), to_k_.weight(), to_v_.weight()}, 0);  // [3 * inner, query_dim]
        if (bias) qkv_b_ = ops::concat({to_q_.bias(), to_k_.bias(), to_v_.bias()}, 0);  // [3 * inner]
        qkv_slots_[0] = to_q_.adapter_slot();
        qkv_slots_[1] = to_k_.adapter_slot();
        qkv_slots_[2] = to_v_.adapter_slot();
        to_q_ = to_k_ = to_v_ = Linear();  // the device memory of the separate weights is released
        // Overlays (LoRA) update the rows of the fused weight in place.
        vb.pp("to_q").publish("weight", qkv_w_.narrow(0, 0, inner));
        vb.pp("to_k").publish("weight", qkv_w_.narrow(0, inner, inner));
        vb.pp("to_v").publish("weight", qkv_w_.narrow(0, 2 * inner, inner));
        fused_qkv_ = true;
    }
}

void CrossAttentionCache::bind(const Tensor& context) {
    const void* storage = context.storage().get();
    if (storage == storage_ && context.offset() == offset_ && context.shape() == shape_) return;
    entries_.clear();
    storage_ = storage;
    offset_ = context.offset();
    shape_ = context.shape();
}

namespace {
// t with dim d removed at index i, as a view: [..., S, ...] -> [...].
Tensor select(const Tensor& t, int d, int64_t i) {
    Shape shape = t.shape(), strides = t.strides();
    const int64_t offset = t.offset() + i * strides[size_t(d)];
    shape.erase(shape.begin() + d);
    strides.erase(strides.begin() + d);
    return Tensor::from_storage(t.storage(), offset, shape, strides, t.dtype());
}
}  // namespace

Tensor Attention::operator()(const Tensor& x, const Tensor& context, const Tensor& residual,
                             CrossAttentionCache* cache) const {
    need_dims("Attention", "x", x, 3, "[N, L, query_dim]");
    const Tensor& ctx = context.defined() ? context : x;  // diffusers: encoder_hidden_states None -> self
    need_dims("Attention", "context", ctx, 3, "[N, Lc, context_dim]");
    SDXL_CHECK(ctx.shape()[0] == x.shape()[0], "Attention: x ", shape_str(x.shape()), " and context ",
               shape_str(ctx.shape()), " have different batch sizes");
    const int64_t N = x.shape()[0], L = x.shape()[1], Lc = ctx.shape()[1];
    Tensor q, k, v;
    if (fused_qkv_ && !context.defined()) {
        Tensor adapters;  // [N, L, 3 * inner] or undefined: the q/k/v adapters' outputs side by side
        const Adapter* a[3] = {qkv_slots_[0]->get(), qkv_slots_[1]->get(), qkv_slots_[2]->get()};
        if (a[0] || a[1] || a[2]) {
            std::vector<Tensor> parts;
            for (const Adapter* p : a)
                parts.push_back(p ? linear_adapter(*p, x, Tensor())
                                  : Tensor::zeros({N, L, heads_ * head_dim_}, x.dtype(), x.device()));
            adapters = ops::concat(parts, 2);
        }
        const Tensor qkv = ops::linear(x, qkv_w_, qkv_b_, adapters).view({N, L, 3, heads_, head_dim_});  // [N, L, 3, H, D]
        const Tensor heads_first = qkv.permute({2, 0, 3, 1, 4});                             // [3, N, H, L, D]
        q = select(heads_first, 0, 0);  // [N, H, L, D] strided views into the one GEMM's output
        k = select(heads_first, 0, 1);
        v = select(heads_first, 0, 2);
    } else {
        SDXL_CHECK(!fused_qkv_, "Attention: built for self-attention only (fused q/k/v) but given a context ",
                   ctx.describe());
        q = to_q_(x).view({N, L, heads_, head_dim_}).permute({0, 2, 1, 3});  // [N, H, L, D]
        CrossAttentionCache::KV kv;
        if (cache && context.defined()) {
            kv = cache->get(this, context, [&] { return CrossAttentionCache::KV{to_k_(ctx), to_v_(ctx)}; });
        } else {
            kv = {to_k_(ctx), to_v_(ctx)};  // [N, Lc, inner] each
        }
        k = kv.k.view({N, Lc, heads_, head_dim_}).permute({0, 2, 1, 3});  // [N, H, Lc, D]
        v = kv.v.view({N, Lc, heads_, head_dim_}).permute({0, 2, 1, 3});  // [N, H, Lc, D]
    }
    const float scale = float(1.0 / std::sqrt(double(head_dim_)));  // diffusers: dim_head ** -0.5
    const Tensor o = ops::attention(q, k, v, Tensor(), false, scale);                    // [N, H, L, D]
    return to_out_(o.permute({0, 2, 1, 3}).reshape({N, L, heads_ * head_dim_}), residual);  // [N, L, query_dim]
}

// ---------------------------------------------------------------------------------------- SpatialSelfAttention

SpatialSelfAttention::SpatialSelfAttention(const WeightBuilder& vb, int64_t channels, int64_t groups, float eps)
    : norm_(vb.pp("group_norm"), groups, channels, eps), attn_(vb, channels, channels, 1, channels, true) {}

Tensor SpatialSelfAttention::operator()(const Tensor& x) const {
    need_dims("SpatialSelfAttention", "x", x, 4, "[N, C, H, W]");
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const Tensor h = norm_(x).view({N, C, H * W}).transpose(1, 2);  // [N, HW, C] (strided view)
    const Tensor a = attn_(h, Tensor());                            // [N, HW, C]
    return ops::add(a.view({N, H, W, C}).permute({0, 3, 1, 2}), x);  // [N, C, H, W]
}

// ---------------------------------------------------------------------------------------- FeedForward

FeedForward::FeedForward(const WeightBuilder& vb, int64_t dim, int64_t mult)
    : proj_in_(vb.pp("net").pp(0).pp("proj"), dim, 2 * mult * dim),
      proj_out_(vb.pp("net").pp(2), mult * dim, dim) {}

Tensor FeedForward::operator()(const Tensor& x, const Tensor& residual) const {
    return proj_out_(ops::geglu(proj_in_(x)), residual);  // [..., 2*inner] -> [..., inner] -> [..., dim]
}

// ---------------------------------------------------------------------------------------- BasicTransformerBlock

BasicTransformerBlock::BasicTransformerBlock(const WeightBuilder& vb, int64_t dim, int64_t heads, int64_t head_dim,
                                             int64_t context_dim)
    : norm1_(vb.pp("norm1"), dim, 1e-5f),
      norm2_(vb.pp("norm2"), dim, 1e-5f),
      norm3_(vb.pp("norm3"), dim, 1e-5f),
      attn1_(vb.pp("attn1"), dim, 0, heads, head_dim, false),
      attn2_(vb.pp("attn2"), dim, context_dim, heads, head_dim, false),
      ff_(vb.pp("ff"), dim) {}

Tensor BasicTransformerBlock::operator()(const Tensor& x, const Tensor& context, CrossAttentionCache* cache) const {
    // Each residual add rides in the last GEMM's epilogue (to_out, ff.net.2): no pass of its own.
    Tensor h = attn1_(norm1_(x), Tensor(), x);     // [N, L, dim]
    h = attn2_(norm2_(h), context, h, cache);      // [N, L, dim]
    return ff_(norm3_(h), h);                      // [N, L, dim]
}

// ---------------------------------------------------------------------------------------- Transformer2DModel

Transformer2DModel::Transformer2DModel(const WeightBuilder& vb, int64_t channels, int64_t heads, int64_t head_dim,
                                       int64_t layers, int64_t context_dim, int64_t groups,
                                       bool use_linear_projection)
    : norm_(vb.pp("norm"), groups, channels, 1e-6f), linear_(use_linear_projection), inner_(heads * head_dim) {
    if (linear_) {
        proj_in_lin_ = Linear(vb.pp("proj_in"), channels, inner_);
        proj_out_lin_ = Linear(vb.pp("proj_out"), inner_, channels);
    } else {
        proj_in_conv_ = Conv2d(vb.pp("proj_in"), channels, inner_, 1, 1, 0);
        proj_out_conv_ = Conv2d(vb.pp("proj_out"), inner_, channels, 1, 1, 0);
    }
    for (int64_t i = 0; i < layers; ++i)
        blocks_.emplace_back(vb.pp("transformer_blocks").pp(i), inner_, heads, head_dim, context_dim);
}

Tensor Transformer2DModel::operator()(const Tensor& x, const Tensor& context, CrossAttentionCache* cache) const {
    need_dims("Transformer2DModel", "x", x, 4, "[N, C, H, W]");
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    Tensor h = norm_(x);  // [N, C, H, W]
    if (linear_) {
        h = proj_in_lin_(h.permute({0, 2, 3, 1}).reshape({N, H * W, C}));  // [N, HW, inner]
    } else {
        h = proj_in_conv_(h);                                                   // [N, inner, H, W]
        h = h.permute({0, 2, 3, 1}).reshape({N, H * W, inner_});               // [N, HW, inner]
    }
    for (const auto& block : blocks_) h = block(h, context, cache);  // [N, HW, inner]
    if (linear_) {
        h = proj_out_lin_(h).view({N, H, W, C}).permute({0, 3, 1, 2});  // [N, C, H, W] (strided view)
    } else {
        h = proj_out_conv_(h.view({N, H, W, inner_}).permute({0, 3, 1, 2}).contiguous());  // [N, C, H, W]
    }
    return ops::add(h, x);  // [N, C, H, W]
}

// ---------------------------------------------------------------------------------------- Downsample2D

Downsample2D::Downsample2D(const WeightBuilder& vb, int64_t channels, int padding)
    : conv_(vb.pp("conv"), channels, channels, 3, 2, padding), asymmetric_pad_(padding == 0) {
    SDXL_CHECK(padding >= 0, "Downsample2D ", vb.prefix(), ": padding must be >= 0, got ", padding);
}

Tensor Downsample2D::operator()(const Tensor& x) const {
    need_dims("Downsample2D", "x", x, 4, "[N, C, H, W]");
    if (asymmetric_pad_) return conv_(pad_right_bottom(x));  // [N, C, floor(H/2), floor(W/2)]
    return conv_(x);                                         // [N, C, ceil(H/2), ceil(W/2)] (padding 1)
}

// ---------------------------------------------------------------------------------------- Upsample2D

Upsample2D::Upsample2D(const WeightBuilder& vb, int64_t channels) : conv_(vb.pp("conv"), channels, channels, 3, 1, 1) {}

Tensor Upsample2D::operator()(const Tensor& x, int64_t out_h, int64_t out_w) const {
    need_dims("Upsample2D", "x", x, 4, "[N, C, H, W]");
    SDXL_CHECK((out_h == -1) == (out_w == -1), "Upsample2D: give both out_h and out_w or neither, got ", out_h, "x",
               out_w);
    const Tensor up = out_h == -1 ? ops::upsample_nearest2x(x)             // [N, C, 2H, 2W]
                                  : ops::upsample_nearest(x, out_h, out_w);  // [N, C, out_h, out_w]
    return conv_(up);
}

// ---------------------------------------------------------------------------------------- TimestepEmbedding

TimestepEmbedding::TimestepEmbedding(const WeightBuilder& vb, int64_t in, int64_t out)
    : linear_1_(vb.pp("linear_1"), in, out), linear_2_(vb.pp("linear_2"), out, out) {}

Tensor TimestepEmbedding::operator()(const Tensor& x) const {
    return linear_2_(ops::silu(linear_1_(x)));  // [N, in] -> [N, out]
}

}  // namespace sdxl::nn
