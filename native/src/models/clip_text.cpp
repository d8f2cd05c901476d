// CLIP text transformer (transformers 4.44 CLIPTextModel / CLIPTextModelWithProjection), pre-norm:
//   x = tok[ids] + pos[0..L)
//   per layer: x = x + out_proj(causal_attn(layer_norm1(x)));  x = x + fc2(act(fc1(layer_norm2(x))))
//   last = final_layer_norm(x); pooled = last[b, pool_pos(b)] (then text_projection)
// Runs on the CPU in F32 (the weights WeightSource hands out).
#include "models/clip_text.h"

#include <cmath>
#include <cstring>
#include <shared_mutex>
#include <string>

#include "nn/layers.h"
#include "ops/ops.h"

namespace sdxl::models {

namespace {

enum class Activation { QuickGelu, Gelu };

Activation activation_of(const std::string& name) {
    if (name == "quick_gelu") return Activation::QuickGelu;
    if (name == "gelu") return Activation::Gelu;  // transformers' "gelu" is the exact erf form
    fail(ErrorCode::UNSUPPORTED, "ClipTextModel: hidden_act '", name, "' is not supported (quick_gelu or gelu)");
}

void validate(const api::ClipTextConfig& c) {
    SDXL_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_attention_heads > 0 &&
                   c.max_position_embeddings > 0 && c.num_hidden_layers >= 0,
               "ClipTextModel: config sizes must be positive: vocab_size ", c.vocab_size, ", hidden_size ",
               c.hidden_size, ", intermediate_size ", c.intermediate_size, ", num_attention_heads ",
               c.num_attention_heads, ", max_position_embeddings ", c.max_position_embeddings,
               ", num_hidden_layers ", c.num_hidden_layers);
    SDXL_CHECK(c.hidden_size % c.num_attention_heads == 0, "ClipTextModel: hidden_size ", c.hidden_size,
               " is not divisible by num_attention_heads ", c.num_attention_heads);
    SDXL_CHECK(std::isfinite(c.layer_norm_eps) && c.layer_norm_eps >= 0.0f,
               "ClipTextModel: layer_norm_eps must be finite and >= 0, got ", c.layer_norm_eps);
    SDXL_CHECK(!c.with_projection || c.projection_dim > 0, "ClipTextModel: projection_dim must be positive, got ",
               c.projection_dim);
}

struct EncoderLayer {
    nn::LayerNorm layer_norm1, layer_norm2;
    nn::Linear q_proj, k_proj, v_proj, out_proj, fc1, fc2;

    EncoderLayer(const nn::WeightBuilder& vb, const api::ClipTextConfig& c)
        : layer_norm1(vb.pp("layer_norm1"), c.hidden_size, c.layer_norm_eps),
          layer_norm2(vb.pp("layer_norm2"), c.hidden_size, c.layer_norm_eps),
          q_proj(vb.pp("self_attn").pp("q_proj"), c.hidden_size, c.hidden_size),
          k_proj(vb.pp("self_attn").pp("k_proj"), c.hidden_size, c.hidden_size),
          v_proj(vb.pp("self_attn").pp("v_proj"), c.hidden_size, c.hidden_size),
          out_proj(vb.pp("self_attn").pp("out_proj"), c.hidden_size, c.hidden_size),
          fc1(vb.pp("mlp").pp("fc1"), c.hidden_size, c.intermediate_size),
          fc2(vb.pp("mlp").pp("fc2"), c.intermediate_size, c.hidden_size) {}
};

}  // namespace

struct ClipTextModel::Impl {
    nn::Placement placement;
    api::ClipTextConfig config;
    Activation act = Activation::QuickGelu;
    Tensor token_embedding;     // [vocab, hidden], contiguous CPU F32
    Tensor position_embedding;  // [max_positions, hidden], contiguous CPU F32
    std::vector<EncoderLayer> layers;
    nn::LayerNorm final_layer_norm;
    nn::Linear text_projection;  // hidden -> projection_dim, no bias; only with_projection

    // x [B, L, C] -> [B, L, C]
    // attention_mask: undefined, or [B, L] with 0 = no query attends to that key (transformers' attention_mask,
    // combined with the causal mask).
    // + residual (the layer's input), fused into out_proj's GEMM.
    Tensor self_attention(const EncoderLayer& layer, const Tensor& x, const Tensor& attention_mask,
                          const Tensor& residual) const {
        const int64_t B = x.size(0), L = x.size(1), C = x.size(2);
        const int64_t H = config.num_attention_heads, D = C / H;
        auto heads = [&](const Tensor& t) { return t.view({B, L, H, D}).permute({0, 2, 1, 3}); };  // [B, H, L, D]
        const Tensor q = heads(layer.q_proj(x));
        const Tensor k = heads(layer.k_proj(x));
        const Tensor v = heads(layer.v_proj(x));
        // transformers scales q by head_dim^-0.5 before q k^T; the op scales the product (same to ~1 ulp).
        const float scale = float(1.0 / std::sqrt(double(D)));
        Tensor a = ops::attention(q, k, v, attention_mask, /*causal=*/true, scale);  // [B, H, L, D]
        a = a.permute({0, 2, 1, 3}).reshape({B, L, C});                      // [B, L, C]
        return layer.out_proj(a, residual);
    }

    Tensor mlp(const EncoderLayer& layer, const Tensor& x, const Tensor& residual) const {
        Tensor h = layer.fc1(x);  // [B, L, intermediate]
        h = act == Activation::QuickGelu ? ops::quick_gelu(h) : ops::gelu(h);
        return layer.fc2(h, residual);  // [B, L, C]
    }

    // ids [B, L] I64 (contiguous CPU, every id checked in range) -> [B, L, C]
    // added: undefined, or contiguous CPU F32 [n, C] rows for ids vocab_size .. vocab_size + n - 1.
    Tensor embed(const Tensor& ids, const Tensor& added) const {
        const int64_t V = config.vocab_size;
        const int64_t B = ids.size(0), L = ids.size(1), C = config.hidden_size;
        Tensor out = Tensor::empty({B, L, C}, DType::F32);
        const int64_t* id = ids.data<int64_t>();
        const float* tok = token_embedding.data<float>();
        const float* pos = position_embedding.data<float>();
        float* o = out.data<float>();
        for (int64_t b = 0; b < B; ++b) {
            for (int64_t l = 0; l < L; ++l) {
                const int64_t i = id[b * L + l];
                const float* t = i < V ? tok + i * C : added.data<float>() + (i - V) * C;
                const float* p = pos + l * C;
                float* y = o + (b * L + l) * C;
                for (int64_t c = 0; c < C; ++c) y[c] = t[c] + p[c];
            }
        }
        return out;
    }

    // Row of ids[b] to pool: the first highest id when eos_token_id == 2 (transformers' legacy rule for
    // configs saved before eos_token_id was fixed), else the first eos_token_id, or 0 if there is none
    // (argmax of an all-zero row).
    int64_t pool_position(const int64_t* row, int64_t L) const {
        int64_t best = 0;
        if (config.eos_token_id == 2) {
            for (int64_t l = 1; l < L; ++l)
                if (row[l] > row[best]) best = l;
            return best;
        }
        for (int64_t l = 0; l < L; ++l)
            if (row[l] == config.eos_token_id) return l;
        return 0;
    }
};

ClipTextModel::ClipTextModel(const api::ClipTextConfig& config, const nn::WeightBuilder& vb)
    : impl_(std::make_shared<Impl>()), weight_table_(vb.table()) {
    validate(config);
    Impl& m = *impl_;
    m.config = config;
    m.act = activation_of(config.hidden_act);
    const int64_t C = config.hidden_size;
    const nn::WeightBuilder tm = vb.pp("text_model");
    // embeddings.position_ids (a non-persistent buffer some older files carry) is deliberately not taken:
    // it is always arange(max_positions) and the caller excludes it from check_all_used.
    const nn::WeightBuilder emb = tm.pp("embeddings");
    // contiguous(): the gather below indexes raw rows (a no-op for mapped or widened weights).
    // The rows are gathered on the host (ids are few); the result goes to the model's device and dtype.
    m.token_embedding = emb.pp("token_embedding").get_host("weight", {config.vocab_size, C}).contiguous();
    m.position_embedding =
        emb.pp("position_embedding").get_host("weight", {config.max_position_embeddings, C}).contiguous();
    m.placement = vb.placement();
    const nn::WeightBuilder layers = tm.pp("encoder").pp("layers");
    m.layers.reserve(size_t(config.num_hidden_layers));
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) m.layers.emplace_back(layers.pp(i), config);
    m.final_layer_norm = nn::LayerNorm(tm.pp("final_layer_norm"), C, config.layer_norm_eps);
    if (config.with_projection)
        m.text_projection = nn::Linear(vb.pp("text_projection"), C, config.projection_dim, /*bias=*/false);
}

const api::ClipTextConfig& ClipTextModel::config() const { return impl_->config; }
const nn::Placement& ClipTextModel::placement() const { return impl_->placement; }

ClipTextOutput ClipTextModel::forward(const Tensor& input_ids, const Tensor& attention_mask,
                                      const Tensor& added_token_embeddings) const {
    std::shared_lock<std::shared_mutex> running(weight_table_->run_mutex);  // LoRA changes wait (set_loras)
    const Impl& m = *impl_;
    const api::ClipTextConfig& c = m.config;
    SDXL_CHECK(input_ids.defined(), "ClipTextModel: input_ids is undefined");
    SDXL_CHECK(input_ids.dtype() == DType::I64 && input_ids.dim() == 2,
               "ClipTextModel: input_ids must be I64 [B, L], got ", input_ids.describe());
    const int64_t B = input_ids.size(0), L = input_ids.size(1), C = c.hidden_size;
    SDXL_CHECK(B > 0 && L > 0, "ClipTextModel: input_ids must not be empty, got ", input_ids.describe());
    SDXL_CHECK(L <= c.max_position_embeddings, "ClipTextModel: input_ids has ", L,
               " tokens, more than max_position_embeddings ", c.max_position_embeddings);
    if (attention_mask.defined())
        SDXL_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == L,
                   "ClipTextModel: attention_mask must be [B, L] = [", B, ", ", L, "], got ", attention_mask.describe());
    Tensor added;  // [n, C] contiguous CPU F32, or undefined
    if (added_token_embeddings.defined()) {
        SDXL_CHECK(added_token_embeddings.dim() == 2 && added_token_embeddings.size(1) == C,
                   "ClipTextModel: added_token_embeddings must be [n, hidden_size = ", C, "], got ",
                   added_token_embeddings.describe());
        added = added_token_embeddings.to(Device::CPU).to(DType::F32).contiguous();
    }
    const int64_t vocab = c.vocab_size + (added.defined() ? added.size(0) : 0);
    const Tensor ids = input_ids.to(Device::CPU).contiguous();  // [B, L]
    const int64_t* id = ids.data<int64_t>();
    // All ids are checked before the gather reads a single embedding row.
    for (int64_t i = 0; i < B * L; ++i)
        SDXL_CHECK(id[i] >= 0 && id[i] < vocab, "ClipTextModel: input_ids[", i / L, ", ", i % L, "] = ", id[i],
                   " is outside the vocabulary [0, ", vocab, ")",
                   added.defined() ? " (the model's vocab_size plus the added token embeddings)" : "");

    ClipTextOutput out;
    out.hidden_states.reserve(m.layers.size() + 1);
    Tensor x = m.embed(ids, added).to(m.placement.dtype).to(m.placement.device);  // [B, L, C]
    out.hidden_states.push_back(x);
    for (const EncoderLayer& layer : m.layers) {
        x = m.self_attention(layer, layer.layer_norm1(x), attention_mask, x);  // x + attn: [B, L, C]
        x = m.mlp(layer, layer.layer_norm2(x), x);                             // x + mlp: [B, L, C]
        out.hidden_states.push_back(x);
    }
    out.last_hidden_state = m.final_layer_norm(x).contiguous();  // [B, L, C]

    // The pooled rows, picked on the host (B rows of C values).
    const Tensor last_host = out.last_hidden_state.to(Device::CPU).to(DType::F32).contiguous();
    Tensor pooled = Tensor::empty({B, C}, DType::F32);
    const float* last = last_host.data<float>();
    for (int64_t b = 0; b < B; ++b) {
        const int64_t l = m.pool_position(id + b * L, L);
        std::memcpy(pooled.data<float>() + b * C, last + (b * L + l) * C, size_t(C) * sizeof(float));
    }
    pooled = pooled.to(m.placement.dtype).to(m.placement.device);        // [B, C]
    out.pooled = c.with_projection ? m.text_projection(pooled) : pooled;  // [B, projection_dim] or [B, C]
    return out;
}

std::vector<std::string> ClipTextModel::set_loras(const LoraStack& loras, const std::string& component) const {
    std::unique_lock<std::shared_mutex> exclusive(weight_table_->run_mutex);
    return apply_loras(*weight_table_, component, nullptr, loras).skipped;
}

}  // namespace sdxl::models
