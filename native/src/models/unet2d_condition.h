// diffusers UNet2DConditionModel as SDXL uses it (base: 3 levels, 6 time ids; refiner: 4 levels, 5 time
// ids with the aesthetic score): conv_in, time_proj (sinusoidal, flip_sin_to_cos, freq_shift) ->
// time_embedding, add_time_proj (addition_time_embed_dim per time id) + text_embeds -> add_embedding,
// down_blocks (DownBlock2D / CrossAttnDownBlock2D with Transformer2DModel), mid_block
// (UNetMidBlock2DCrossAttn), up_blocks with skip connections and explicit upsample sizes when a latent
// side is not a multiple of 2^(levels-1), conv_norm_out, silu, conv_out. Keys are diffusers' names.
#pragma once

#include <memory>

#include "core/tensor.h"
#include "models/lora.h"
#include "nn/blocks.h"
#include "nn/weights.h"
#include "sdxl/configs.h"

namespace sdxl::models {

class UNetGraphRunner;

class UNet2DConditionModel {
public:
    UNet2DConditionModel(const api::UNetConfig& config, const nn::WeightBuilder& vb);
    // sample [B, in_channels, H, W]; timestep: 0-d or [B] (F32 or I64; a 0-d value is broadcast);
    // encoder_hidden_states [B, L, cross_attention_dim]; text_embeds [B, P]; time_ids [B, n_ids]
    // with n_ids * addition_time_embed_dim + P == projection_class_embeddings_input_dim.
    // Returns the noise prediction [B, out_channels, H, W].
    // cross_cache: for a sequence of calls with the same encoder_hidden_states (the steps of one generation),
    // keeps each cross-attention's keys and values of it (nn::CrossAttentionCache); null: computed every call.
    Tensor forward(const Tensor& sample, const Tensor& timestep, const Tensor& encoder_hidden_states,
                   const Tensor& text_embeds, const Tensor& time_ids,
                   nn::CrossAttentionCache* cross_cache = nullptr) const;
    const api::UNetConfig& config() const;
    // The weights it computes with, by diffusers key (LoRA overlays update them in place).
    const std::shared_ptr<nn::WeightTable>& weight_table() const { return weight_table_; }
    // Makes `loras` the set applied (models/lora.h), waiting for a running forward pass; drops the CUDA graphs when
    // run-time adapters changed (a captured step would keep the old ones). Returns the skipped modules of lenient
    // files.
    std::vector<std::string> set_loras(const LoraStack& loras) const;
    // Where the weights live and the dtype the model computes in; inputs must be on that device and dtype.
    const nn::Placement& placement() const;
    // CUDA graphs per input shape (unet_graph.h): on by default for CUDA F16/BF16 (SDXL4J_CUDA_GRAPHS).
    void set_cuda_graphs(bool enabled) const;  // a run-time setting, not the model
    bool cuda_graphs() const;
    UNetGraphRunner& graph_runner() const;  // stats, clear (tests, benchmarks)

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
    std::shared_ptr<nn::WeightTable> weight_table_;
};

}  // namespace sdxl::models
