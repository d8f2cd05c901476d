// diffusers building blocks shared by the UNet and the VAE (diffusers/models/resnet.py, attention.py,
// attention_processor.py, transformers/transformer_2d.py, downsampling.py, upsampling.py, embeddings.py).
// Each is built from a WeightBuilder scoped at the block, with diffusers' key names below it.
#pragma once

#include <unordered_map>
#include <vector>

#include "nn/layers.h"

namespace sdxl::nn {

class Attention;

// The cross-attention keys and values of one text context, kept across the steps of a generation: the context
// does not change between steps, so each cross-attention projects it once (to_k, to_v) and every later step
// reuses the result (SDXL base at 1024 px: 70 blocks x 2 GEMMs per step saved). Owned by whoever runs the
// sequence of forward passes (pipeline/denoise_loop); bound to the context tensor it was filled from: a
// different tensor (other storage, offset or shape) empties it first, and to the weights' overlay version
// (bind_weights: a LoRA loaded, rescaled or unloaded since changes to_k/to_v). Not thread-safe: one loop, one cache.
class CrossAttentionCache {
public:
    struct KV {
        Tensor k, v;  // [N, Lc, inner] each, as to_k / to_v return them
    };
    // The entry of `attn` for `context`, made by `project` on first use.
    template <typename Project>
    const KV& get(const Attention* attn, const Tensor& context, Project&& project) {
        bind(context);
        auto it = entries_.find(attn);
        if (it == entries_.end()) it = entries_.emplace(attn, project()).first;
        return it->second;
    }
    size_t size() const { return entries_.size(); }
    void clear() { entries_.clear(); }
    // Empties the cache when `version` (WeightTable::version of the model it serves) differs from the last one seen.
    void bind_weights(uint64_t version) {
        if (version != weights_version_) entries_.clear();
        weights_version_ = version;
    }

private:
    void bind(const Tensor& context);
    std::unordered_map<const Attention*, KV> entries_;
    const void* storage_ = nullptr;
    int64_t offset_ = -1;
    Shape shape_;
    uint64_t weights_version_ = 0;
};

// ResnetBlock2D (time_embedding_norm "default", silu, output_scale_factor 1):
// keys norm1, conv1, time_emb_proj (only when temb_channels > 0), norm2, conv2, conv_shortcut (1x1, only
// when in != out).
//   h = conv1(silu(norm1(x))); h += time_emb_proj(silu(temb))[:, :, None, None]; h = conv2(silu(norm2(h)))
//   out = shortcut(x) + h
class ResnetBlock2D {
public:
    ResnetBlock2D() = default;
    ResnetBlock2D(const WeightBuilder& vb, int64_t in, int64_t out, int64_t temb_channels, int64_t groups, float eps);
    Tensor operator()(const Tensor& x, const Tensor& temb) const;  // x [N, in, H, W], temb [N, T] or undefined

private:
    GroupNorm norm1_, norm2_;
    Conv2d conv1_, conv2_, shortcut_;
    Linear time_emb_proj_;
    bool has_temb_ = false, has_shortcut_ = false;
};

// diffusers Attention with AttnProcessor semantics: keys to_q, to_k, to_v (no bias unless `bias`),
// to_out.0 (with bias). heads x head_dim = inner dim. (The VAE's group_norm + residual variant is
// SpatialSelfAttention below.)
class Attention {
public:
    Attention() = default;
    Attention(const WeightBuilder& vb, int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim,
              bool bias);
    // x [N, L, query_dim], context [N, Lc, context_dim] or undefined (self-attention) -> [N, L, query_dim];
    // residual [N, L, query_dim] or undefined: added by to_out's GEMM (see Linear). cache: when given with a
    // context, the context's keys and values are taken from (or put into) it.
    Tensor operator()(const Tensor& x, const Tensor& context, const Tensor& residual = Tensor(),
                      CrossAttentionCache* cache = nullptr) const;

private:
    Linear to_q_, to_k_, to_v_, to_out_;
    // Self-attention on CUDA: to_q, to_k, to_v as one [3 * inner, query_dim] weight, one GEMM reading x once
    // (to_q_/to_k_/to_v_ are then empty). The cpu keeps three GEMMs: its results stay bit for bit the same.
    // Run-time adapters of to_q/to_k/to_v (their slots kept here) are computed apart and added in the fused GEMM's
    // epilogue, side by side ([N, L, 3 * inner], zeros for a projection without one).
    Tensor qkv_w_, qkv_b_;
    std::shared_ptr<AdapterSlot> qkv_slots_[3];
    bool fused_qkv_ = false;
    int64_t heads_ = 1, head_dim_ = 1;
};

// The VAE mid-block attention: group_norm + single-head Attention over H*W + residual. x [N, C, H, W].
class SpatialSelfAttention {
public:
    SpatialSelfAttention() = default;
    SpatialSelfAttention(const WeightBuilder& vb, int64_t channels, int64_t groups, float eps);
    Tensor operator()(const Tensor& x) const;

private:
    GroupNorm norm_;
    Attention attn_;
};

// FeedForward with GEGLU: keys net.0.proj [2*inner, dim], net.2 [dim, inner]; inner = 4 * dim.
class FeedForward {
public:
    FeedForward() = default;
    FeedForward(const WeightBuilder& vb, int64_t dim, int64_t mult = 4);
    Tensor operator()(const Tensor& x, const Tensor& residual = Tensor()) const;  // [..., dim] (+ residual, fused)

private:
    Linear proj_in_, proj_out_;
};

// BasicTransformerBlock (norm_type "layer_norm"): norm1, attn1 (self), norm2, attn2 (cross), norm3, ff.
class BasicTransformerBlock {
public:
    BasicTransformerBlock() = default;
    BasicTransformerBlock(const WeightBuilder& vb, int64_t dim, int64_t heads, int64_t head_dim, int64_t context_dim);
    // x [N, L, dim]; cache: the cross-attention's keys/values of `context` (CrossAttentionCache), or null
    Tensor operator()(const Tensor& x, const Tensor& context, CrossAttentionCache* cache = nullptr) const;

private:
    LayerNorm norm1_, norm2_, norm3_;
    Attention attn1_, attn2_;
    FeedForward ff_;
};

// Transformer2DModel (continuous input): norm (GroupNorm 32, eps 1e-6), proj_in (Linear when
// use_linear_projection, else 1x1 Conv2d), transformer_blocks.{i}, proj_out; residual.
class Transformer2DModel {
public:
    Transformer2DModel() = default;
    Transformer2DModel(const WeightBuilder& vb, int64_t channels, int64_t heads, int64_t head_dim, int64_t layers,
                       int64_t context_dim, int64_t groups, bool use_linear_projection);
    // x [N, C, H, W], context [N, Lc, D]; cache: see BasicTransformerBlock
    Tensor operator()(const Tensor& x, const Tensor& context, CrossAttentionCache* cache = nullptr) const;

private:
    GroupNorm norm_;
    Linear proj_in_lin_, proj_out_lin_;
    Conv2d proj_in_conv_, proj_out_conv_;
    std::vector<BasicTransformerBlock> blocks_;
    bool linear_ = true;
    int64_t inner_ = 0;
};

// Downsample2D: key conv (3x3, stride 2). padding 1 (UNet), or padding 0 after an asymmetric (0, 1, 0, 1)
// zero pad (the VAE encoder, diffusers' padding=0 case).
class Downsample2D {
public:
    Downsample2D() = default;
    Downsample2D(const WeightBuilder& vb, int64_t channels, int padding);
    Tensor operator()(const Tensor& x) const;

private:
    Conv2d conv_;
    bool asymmetric_pad_ = false;
};

// Upsample2D: nearest x2 (or to an explicit size) then conv (3x3, padding 1).
class Upsample2D {
public:
    Upsample2D() = default;
    Upsample2D(const WeightBuilder& vb, int64_t channels);
    Tensor operator()(const Tensor& x, int64_t out_h = -1, int64_t out_w = -1) const;  // -1: 2H x 2W

private:
    Conv2d conv_;
};

// TimestepEmbedding: linear_1 [out, in], silu, linear_2 [out, out].
class TimestepEmbedding {
public:
    TimestepEmbedding() = default;
    TimestepEmbedding(const WeightBuilder& vb, int64_t in, int64_t out);
    Tensor operator()(const Tensor& x) const;

private:
    Linear linear_1_, linear_2_;
};

}  // namespace sdxl::nn
