// transformers CLIPTextModel / CLIPTextModelWithProjection (SDXL's text_encoder / text_encoder_2).
// Keys (root of the model file): text_model.embeddings.{token_embedding,position_embedding}.weight,
// text_model.encoder.layers.{i}.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2},
// text_model.final_layer_norm, and text_projection.weight [projection_dim, hidden] (no bias) when
// with_projection. position_ids buffers, if present in a file, are not weights (the model ignores them).
#pragma once

#include <vector>

#include "core/tensor.h"
#include "models/lora.h"
#include "nn/weights.h"
#include "sdxl/configs.h"

namespace sdxl::models {

struct ClipTextOutput {
    // hidden_states[0] = embeddings, hidden_states[i] = output of layer i (num_hidden_layers + 1 entries),
    // as transformers' output_hidden_states=True; SDXL uses hidden_states[num_layers - 1] ("[-2]").
    std::vector<Tensor> hidden_states;  // each [B, L, hidden]
    Tensor last_hidden_state;           // final_layer_norm(hidden_states.back()) [B, L, hidden]
    // Pooled: last_hidden_state at the first position of the highest token id (eos_token_id == 2 legacy
    // rule; else the first position of eos_token_id), then text_projection when with_projection.
    Tensor pooled;                      // [B, hidden] or [B, projection_dim]
};

class ClipTextModel {
public:
    ClipTextModel(const api::ClipTextConfig& config, const nn::WeightBuilder& vb);
    // input_ids [B, L] I64 with L <= max_position_embeddings; causal self-attention, no padding mask
    // (SDXL pads with eos/"!" and attends to the padding, like transformers without attention_mask).
    // attention_mask (optional): [B, L] F32 or I64, 0 = that position is masked out of every query's attention
    // (compel's down-weighting). A query whose every allowed key is masked gets zeros.
    // added_token_embeddings (optional): [n, hidden] rows appended to the token-embedding table (textual
    // inversion): ids vocab_size .. vocab_size + n - 1 read them; the table itself is never modified.
    ClipTextOutput forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                           const Tensor& added_token_embeddings = Tensor()) const;
    const api::ClipTextConfig& config() const;
    // The weights it computes with, by diffusers key (LoRA overlays update them in place).
    const std::shared_ptr<nn::WeightTable>& weight_table() const { return weight_table_; }
    // Makes `loras` the set applied (models/lora.h; component "text_encoder" or "text_encoder_2": which modules of
    // the files apply), waiting for a running forward pass. Returns the skipped modules of lenient files.
    std::vector<std::string> set_loras(const LoraStack& loras, const std::string& component) const;
    // Where the weights live and the dtype the model computes in; inputs must be on that device and dtype.
    const nn::Placement& placement() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
    std::shared_ptr<nn::WeightTable> weight_table_;
};

}  // namespace sdxl::models
