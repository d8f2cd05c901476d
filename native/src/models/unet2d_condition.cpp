// diffusers 0.31 UNet2DConditionModel, the configuration SDXL base and refiner use:
//   emb = time_embedding(time_proj(t)) + add_embedding(concat(text_embeds, add_time_proj(time_ids)))
//   x = conv_in(sample); skips = [x]
//   down block i: per layer j: x = resnet(x, emb) (+ transformer(x, context)); skips += x;
//                 then (all but the last level) x = downsample(x); skips += x
//   mid: resnet, transformer, resnet
//   up block i (levels reversed, layers_per_block + 1 resnets): x = resnet(cat(x, skips.pop()), emb)
//                 (+ transformer); then (all but the last) x = upsample(x), to the size of the next skip
//                 when the latent is not a multiple of 2^(levels-1)
//   out = conv_out(silu(conv_norm_out(x)))
// The time embeddings are computed in F32 (diffusers' Timesteps always returns float32) and cast to the
// sample's dtype before time_embedding, as diffusers does.
#include "models/unet2d_condition.h"

#include <cmath>
#include <shared_mutex>
#include <string>
#include <vector>

#include "models/unet_graph.h"
#include "nn/blocks.h"
#include "nn/layers.h"
#include "ops/ops.h"

namespace sdxl::models {

namespace {

constexpr const char* kDownPlain = "DownBlock2D";
constexpr const char* kDownCross = "CrossAttnDownBlock2D";
constexpr const char* kUpPlain = "UpBlock2D";
constexpr const char* kUpCross = "CrossAttnUpBlock2D";
constexpr const char* kMidCross = "UNetMidBlock2DCrossAttn";

// diffusers accepts one number for every level (an int in config.json); expand it to one per level.
std::vector<int64_t> per_level(const std::vector<int64_t>& v, size_t levels, const char* name) {
    if (v.size() == 1 && levels > 1) return std::vector<int64_t>(levels, v[0]);
    SDXL_CHECK(v.size() == levels, "UNet2DConditionModel: ", name, " has ", v.size(), " entries, expected one per level (",
               levels, ", the length of block_out_channels) or a single value");
    return v;
}

bool is_cross_down(const std::string& type) {
    if (type == kDownCross) return true;
    if (type == kDownPlain) return false;
    fail(ErrorCode::UNSUPPORTED, "UNet2DConditionModel: down block type '", type, "' is not supported (", kDownPlain,
         " or ", kDownCross, ")");
}

bool is_cross_up(const std::string& type) {
    if (type == kUpCross) return true;
    if (type == kUpPlain) return false;
    fail(ErrorCode::UNSUPPORTED, "UNet2DConditionModel: up block type '", type, "' is not supported (", kUpPlain, " or ",
         kUpCross, ")");
}

// Checks a config and returns it with the per-level lists expanded.
api::UNetConfig normalized(const api::UNetConfig& config) {
    api::UNetConfig c = config;
    const size_t levels = c.block_out_channels.size();
    SDXL_CHECK(levels >= 1, "UNet2DConditionModel: block_out_channels is empty");
    SDXL_CHECK(c.down_block_types.size() == levels && c.up_block_types.size() == levels,
               "UNet2DConditionModel: ", c.down_block_types.size(), " down and ", c.up_block_types.size(),
               " up block types for ", levels, " levels (block_out_channels)");
    c.transformer_layers_per_block = per_level(c.transformer_layers_per_block, levels, "transformer_layers_per_block");
    c.num_attention_heads = per_level(c.num_attention_heads, levels, "num_attention_heads");

    SDXL_CHECK(c.in_channels > 0 && c.out_channels > 0, "UNet2DConditionModel: in_channels ", c.in_channels,
               " and out_channels ", c.out_channels, " must be positive");
    SDXL_CHECK(c.layers_per_block >= 1, "UNet2DConditionModel: layers_per_block must be >= 1, got ", c.layers_per_block);
    SDXL_CHECK(c.norm_num_groups >= 1, "UNet2DConditionModel: norm_num_groups must be >= 1, got ", c.norm_num_groups);
    SDXL_CHECK(std::isfinite(c.norm_eps) && c.norm_eps > 0.0f, "UNet2DConditionModel: norm_eps must be finite and > 0, got ",
               c.norm_eps);
    SDXL_CHECK(std::isfinite(c.freq_shift), "UNet2DConditionModel: freq_shift must be finite, got ", c.freq_shift);
    SDXL_CHECK(c.conv_in_kernel >= 1 && c.conv_in_kernel % 2 == 1 && c.conv_out_kernel >= 1 && c.conv_out_kernel % 2 == 1,
               "UNet2DConditionModel: conv_in_kernel ", c.conv_in_kernel, " and conv_out_kernel ", c.conv_out_kernel,
               " must be odd and positive");
    SDXL_CHECK(c.downsample_padding == 0 || c.downsample_padding == 1,
               "UNet2DConditionModel: downsample_padding must be 0 or 1, got ", c.downsample_padding);
    if (c.mid_block_scale_factor != 1.0f)
        fail(ErrorCode::UNSUPPORTED, "UNet2DConditionModel: mid_block_scale_factor ", c.mid_block_scale_factor,
             " is not supported (only 1, as in SDXL)");
    if (c.mid_block_type != kMidCross)
        fail(ErrorCode::UNSUPPORTED, "UNet2DConditionModel: mid_block_type '", c.mid_block_type,
             "' is not supported (", kMidCross, ")");
    if (c.addition_embed_type == "text_time") {
        SDXL_CHECK(c.addition_time_embed_dim >= 1 && c.projection_class_embeddings_input_dim >= 1,
                   "UNet2DConditionModel: addition_embed_type 'text_time' needs addition_time_embed_dim (got ",
                   c.addition_time_embed_dim, ") and projection_class_embeddings_input_dim (got ",
                   c.projection_class_embeddings_input_dim, ") >= 1");
        SDXL_CHECK(c.addition_time_embed_dim / 2 == 0 || double(c.addition_time_embed_dim / 2) != double(c.freq_shift),
                   "UNet2DConditionModel: addition_time_embed_dim ", c.addition_time_embed_dim, " with freq_shift ",
                   c.freq_shift, " divides by zero in the sinusoidal embedding");
    } else if (!c.addition_embed_type.empty()) {
        fail(ErrorCode::UNSUPPORTED, "UNet2DConditionModel: addition_embed_type '", c.addition_embed_type,
             "' is not supported ('text_time', or empty for none)");
    }
    SDXL_CHECK(c.block_out_channels[0] / 2 == 0 || double(c.block_out_channels[0] / 2) != double(c.freq_shift),
               "UNet2DConditionModel: block_out_channels[0] ", c.block_out_channels[0], " with freq_shift ",
               c.freq_shift, " divides by zero in the sinusoidal embedding");

    for (size_t i = 0; i < levels; ++i) {
        const int64_t ch = c.block_out_channels[i];
        SDXL_CHECK(ch >= 1 && ch % c.norm_num_groups == 0, "UNet2DConditionModel: block_out_channels[", i, "] = ", ch,
                   " must be a positive multiple of norm_num_groups ", c.norm_num_groups);
    }
    for (size_t i = 0; i < levels; ++i) {
        const bool cross = is_cross_down(c.down_block_types[i]);
        // Up block i works at level levels-1-i with that level's heads and transformer layers.
        const size_t up_level = levels - 1 - i;
        const bool up_cross = is_cross_up(c.up_block_types[i]);
        auto check_attention = [&](size_t level, const char* where) {
            const int64_t heads = c.num_attention_heads[level], layers = c.transformer_layers_per_block[level];
            const int64_t chl = c.block_out_channels[level];
            SDXL_CHECK(heads >= 1 && chl % heads == 0, "UNet2DConditionModel: ", where, " level ", level, " has ", chl,
                       " channels, not divisible by num_attention_heads ", heads);
            SDXL_CHECK(layers >= 1, "UNet2DConditionModel: ", where, " level ", level,
                       " needs transformer_layers_per_block >= 1, got ", layers);
        };
        if (cross) check_attention(i, "down block");
        if (up_cross) check_attention(up_level, "up block");
    }
    // The mid block always has attention, with the last level's heads and transformer layers.
    {
        const size_t last = levels - 1;
        const int64_t ch = c.block_out_channels[last], heads = c.num_attention_heads[last];
        SDXL_CHECK(heads >= 1 && ch % heads == 0, "UNet2DConditionModel: mid block has ", ch,
                   " channels, not divisible by num_attention_heads ", heads);
        SDXL_CHECK(c.transformer_layers_per_block[last] >= 1,
                   "UNet2DConditionModel: mid block needs transformer_layers_per_block >= 1, got ",
                   c.transformer_layers_per_block[last]);
    }
    SDXL_CHECK(c.cross_attention_dim >= 1, "UNet2DConditionModel: cross_attention_dim must be >= 1, got ",
               c.cross_attention_dim);
    return c;
}

// CrossAttnDownBlock2D / DownBlock2D (attentions empty).
struct DownBlock {
    std::vector<nn::ResnetBlock2D> resnets;
    std::vector<nn::Transformer2DModel> attentions;
    nn::Downsample2D downsampler;
    bool has_downsampler = false;
};

// CrossAttnUpBlock2D / UpBlock2D (attentions empty).
struct UpBlock {
    std::vector<nn::ResnetBlock2D> resnets;
    std::vector<nn::Transformer2DModel> attentions;
    nn::Upsample2D upsampler;
    bool has_upsampler = false;
};

// UNetMidBlock2DCrossAttn with one attention: resnets.0, attentions.0, resnets.1.
struct MidBlock {
    nn::ResnetBlock2D resnet0, resnet1;
    nn::Transformer2DModel attention;
};

}  // namespace

struct UNet2DConditionModel::Impl {
    nn::Placement placement;
    api::UNetConfig config;  // normalized: per-level lists have one entry per level
    nn::Conv2d conv_in;
    nn::TimestepEmbedding time_embedding;
    nn::TimestepEmbedding add_embedding;
    bool text_time = false;
    std::vector<DownBlock> down_blocks;
    MidBlock mid_block;
    std::vector<UpBlock> up_blocks;
    nn::GroupNorm conv_norm_out;
    nn::Conv2d conv_out;
    std::unique_ptr<UNetGraphRunner> graphs;  // CUDA graphs per input shape (unet_graph.h)

    Tensor forward(const api::UNetConfig& c, const Tensor& sample, const Tensor& timestep,
                   const Tensor& encoder_hidden_states, const Tensor& text_embeds, const Tensor& time_ids,
                   nn::CrossAttentionCache* cross_cache) const;

    // timestep 0-d, [1] or [B] (F32 or I64) -> [B] on the timestep's device, same dtype.
    static Tensor batch_timesteps(const Tensor& timestep, int64_t B) {
        SDXL_CHECK(timestep.defined(), "UNet2DConditionModel: timestep is undefined");
        SDXL_CHECK(timestep.dtype() == DType::F32 || timestep.dtype() == DType::I64,
                   "UNet2DConditionModel: timestep must be F32 or I64, got ", timestep.describe());
        SDXL_CHECK(timestep.dim() == 0 || (timestep.dim() == 1 && (timestep.size(0) == 1 || timestep.size(0) == B)),
                   "UNet2DConditionModel: timestep must be 0-d, [1] or [B] with B = ", B, " (the sample's batch), got ",
                   timestep.describe());
        if (timestep.device() != Device::CPU) {  // stays on the device: no host synchronisation (CUDA graphs)
            const Tensor t = timestep.contiguous();
            if (t.dim() == 1 && t.size(0) == B) return t;
            return Tensor::from_storage(t.storage(), t.offset(), {B}, {0}, t.dtype()).contiguous();  // broadcast
        }
        const Tensor t = timestep.contiguous();
        if (t.dim() == 1 && t.size(0) == B) return t;
        // Broadcast the single value to the batch (diffusers: timesteps.expand(sample.shape[0])).
        Tensor out = Tensor::empty({B}, t.dtype());
        if (t.dtype() == DType::F32) {
            const float v = t.data<float>()[0];
            for (int64_t b = 0; b < B; ++b) out.data<float>()[b] = v;
        } else {
            const int64_t v = t.data<int64_t>()[0];
            for (int64_t b = 0; b < B; ++b) out.data<int64_t>()[b] = v;
        }
        return out;  // [B]
    }
};

UNet2DConditionModel::UNet2DConditionModel(const api::UNetConfig& config, const nn::WeightBuilder& vb)
    : impl_(std::make_shared<Impl>()), weight_table_(vb.table()) {
    Impl& m = *impl_;
    m.placement = vb.placement();
    m.config = normalized(config);
    const api::UNetConfig& c = m.config;
    const std::vector<int64_t>& channels = c.block_out_channels;
    const size_t levels = channels.size();
    const int64_t c0 = channels[0];
    const int64_t temb = 4 * c0;  // time_embed_dim
    const int64_t groups = c.norm_num_groups;
    const float eps = c.norm_eps;

    m.conv_in = nn::Conv2d(vb.pp("conv_in"), c.in_channels, c0, int(c.conv_in_kernel), 1, int(c.conv_in_kernel / 2));
    m.time_embedding = nn::TimestepEmbedding(vb.pp("time_embedding"), c0, temb);
    m.text_time = c.addition_embed_type == "text_time";
    if (m.text_time)
        m.add_embedding = nn::TimestepEmbedding(vb.pp("add_embedding"), c.projection_class_embeddings_input_dim, temb);

    auto transformer = [&](const nn::WeightBuilder& b, int64_t ch, size_t level) {
        const int64_t heads = c.num_attention_heads[level];
        return nn::Transformer2DModel(b, ch, heads, ch / heads, c.transformer_layers_per_block[level],
                                      c.cross_attention_dim, groups, c.use_linear_projection);
    };

    // Down blocks: level i maps channels[i-1] (channels[0] for i = 0) to channels[i].
    const nn::WeightBuilder downs = vb.pp("down_blocks");
    int64_t out_ch = c0;
    for (size_t i = 0; i < levels; ++i) {
        const nn::WeightBuilder b = downs.pp(int64_t(i));
        const int64_t in_ch = out_ch;
        out_ch = channels[i];
        const bool cross = is_cross_down(c.down_block_types[i]);
        DownBlock block;
        for (int64_t j = 0; j < c.layers_per_block; ++j) {
            block.resnets.emplace_back(b.pp("resnets").pp(j), j == 0 ? in_ch : out_ch, out_ch, temb, groups, eps);
            if (cross) block.attentions.push_back(transformer(b.pp("attentions").pp(j), out_ch, i));
        }
        block.has_downsampler = i + 1 < levels;
        if (block.has_downsampler)
            block.downsampler = nn::Downsample2D(b.pp("downsamplers").pp(0), out_ch, int(c.downsample_padding));
        m.down_blocks.push_back(std::move(block));
    }

    const int64_t last_ch = channels[levels - 1];
    const nn::WeightBuilder mid = vb.pp("mid_block");
    m.mid_block.resnet0 = nn::ResnetBlock2D(mid.pp("resnets").pp(0), last_ch, last_ch, temb, groups, eps);
    m.mid_block.attention = transformer(mid.pp("attentions").pp(0), last_ch, levels - 1);
    m.mid_block.resnet1 = nn::ResnetBlock2D(mid.pp("resnets").pp(1), last_ch, last_ch, temb, groups, eps);

    // Up blocks: up block i works at level L = levels-1-i. Its resnet j takes the running tensor (the
    // previous up block's channels for j = 0, else channels[L]) concatenated with a skip: channels[L] for all
    // but the last resnet, whose skip comes from the level below (channels[L-1], or channels[0] at L = 0).
    const nn::WeightBuilder ups = vb.pp("up_blocks");
    out_ch = last_ch;
    for (size_t i = 0; i < levels; ++i) {
        const nn::WeightBuilder b = ups.pp(int64_t(i));
        const size_t level = levels - 1 - i;
        const int64_t prev_ch = out_ch;
        out_ch = channels[level];
        const int64_t below_ch = channels[level == 0 ? 0 : level - 1];
        const bool cross = is_cross_up(c.up_block_types[i]);
        const int64_t n = c.layers_per_block + 1;
        UpBlock block;
        for (int64_t j = 0; j < n; ++j) {
            const int64_t skip_ch = j == n - 1 ? below_ch : out_ch;
            const int64_t run_ch = j == 0 ? prev_ch : out_ch;
            block.resnets.emplace_back(b.pp("resnets").pp(j), run_ch + skip_ch, out_ch, temb, groups, eps);
            if (cross) block.attentions.push_back(transformer(b.pp("attentions").pp(j), out_ch, level));
        }
        block.has_upsampler = i + 1 < levels;
        if (block.has_upsampler) block.upsampler = nn::Upsample2D(b.pp("upsamplers").pp(0), out_ch);
        m.up_blocks.push_back(std::move(block));
    }

    m.conv_norm_out = nn::GroupNorm(vb.pp("conv_norm_out"), groups, c0, eps);
    m.conv_out = nn::Conv2d(vb.pp("conv_out"), c0, c.out_channels, int(c.conv_out_kernel), 1, int(c.conv_out_kernel / 2));
    m.graphs = std::make_unique<UNetGraphRunner>(m.placement.device, m.placement.dtype);
}

std::vector<std::string> UNet2DConditionModel::set_loras(const LoraStack& loras) const {
    std::unique_lock<std::shared_mutex> exclusive(weight_table_->run_mutex);
    LoraApplied applied = apply_loras(*weight_table_, "unet", &impl_->config, loras);
    if (applied.adapters_changed) impl_->graphs->clear();
    return applied.skipped;
}

void UNet2DConditionModel::set_cuda_graphs(bool enabled) const { impl_->graphs->set_enabled(enabled); }
bool UNet2DConditionModel::cuda_graphs() const { return impl_->graphs->enabled(); }
UNetGraphRunner& UNet2DConditionModel::graph_runner() const { return *impl_->graphs; }

const nn::Placement& UNet2DConditionModel::placement() const { return impl_->placement; }
const api::UNetConfig& UNet2DConditionModel::config() const { return impl_->config; }

Tensor UNet2DConditionModel::forward(const Tensor& sample, const Tensor& timestep, const Tensor& encoder_hidden_states,
                                     const Tensor& text_embeds, const Tensor& time_ids,
                                     nn::CrossAttentionCache* cross_cache) const {
    std::shared_lock<std::shared_mutex> running(weight_table_->run_mutex);  // LoRA changes wait (set_loras)
    const Impl& m = *impl_;
    // Keys/values projected before a LoRA change are stale (to_k / to_v changed).
    if (cross_cache) cross_cache->bind_weights(weight_table_->version.load());
    // Under CUDA graphs the cross-attention keys/values are not reused across steps: a captured graph would keep
    // reading the cache's buffers of the generation it was captured in (its 0.8% of the step's FLOPs are
    // recomputed inside the graph instead).
    nn::CrossAttentionCache* cache = m.graphs->enabled() && sample.defined() && sample.device() == Device::CUDA
                                         ? nullptr
                                         : cross_cache;
    return m.graphs->run(
        [&m, cache](const Tensor& x, const Tensor& t, const Tensor& ctx, const Tensor& te, const Tensor& ids) {
            return m.forward(m.config, x, t, ctx, te, ids, cache);
        },
        sample, timestep, encoder_hidden_states, text_embeds, time_ids);
}

Tensor UNet2DConditionModel::Impl::forward(const api::UNetConfig& c, const Tensor& sample, const Tensor& timestep,
                                           const Tensor& encoder_hidden_states, const Tensor& text_embeds,
                                           const Tensor& time_ids, nn::CrossAttentionCache* cross_cache) const {
    const Impl& m = *this;

    // ---- argument checks (shapes named, before any work)
    SDXL_CHECK(sample.defined(), "UNet2DConditionModel: sample is undefined");
    SDXL_CHECK(sample.dim() == 4 && sample.size(1) == c.in_channels,
               "UNet2DConditionModel: sample must be [B, ", c.in_channels, ", H, W] (in_channels ", c.in_channels,
               "), got ", sample.describe());
    const int64_t B = sample.size(0), H = sample.size(2), W = sample.size(3);
    SDXL_CHECK(B >= 1 && H >= 1 && W >= 1, "UNet2DConditionModel: sample must not be empty, got ", sample.describe());
    SDXL_CHECK(is_floating(sample.dtype()), "UNet2DConditionModel: sample must be a float tensor, got ",
               sample.describe());
    SDXL_CHECK(encoder_hidden_states.defined(), "UNet2DConditionModel: encoder_hidden_states is undefined");
    SDXL_CHECK(encoder_hidden_states.dim() == 3 && encoder_hidden_states.size(0) == B &&
                   encoder_hidden_states.size(1) >= 1 && encoder_hidden_states.size(2) == c.cross_attention_dim,
               "UNet2DConditionModel: encoder_hidden_states must be [B, L, ", c.cross_attention_dim, "] with B = ", B,
               " (cross_attention_dim ", c.cross_attention_dim, "), got ", encoder_hidden_states.describe());
    SDXL_CHECK(encoder_hidden_states.dtype() == sample.dtype() && encoder_hidden_states.device() == sample.device(),
               "UNet2DConditionModel: encoder_hidden_states ", encoder_hidden_states.describe(),
               " must have the dtype and device of sample ", sample.describe());
    int64_t n_ids = 0;
    if (m.text_time) {
        SDXL_CHECK(text_embeds.defined() && time_ids.defined(),
                   "UNet2DConditionModel: addition_embed_type 'text_time' needs text_embeds and time_ids");
        SDXL_CHECK(text_embeds.dim() == 2 && text_embeds.size(0) == B,
                   "UNet2DConditionModel: text_embeds must be [B, P] with B = ", B, ", got ", text_embeds.describe());
        SDXL_CHECK(text_embeds.dtype() == sample.dtype() && text_embeds.device() == sample.device(),
                   "UNet2DConditionModel: text_embeds ", text_embeds.describe(),
                   " must have the dtype and device of sample ", sample.describe());
        SDXL_CHECK(time_ids.dim() == 2 && time_ids.size(0) == B,
                   "UNet2DConditionModel: time_ids must be [B, n_ids] with B = ", B, ", got ", time_ids.describe());
        SDXL_CHECK(time_ids.dtype() == DType::F32 || time_ids.dtype() == DType::I64,
                   "UNet2DConditionModel: time_ids must be F32 or I64, got ", time_ids.describe());
        n_ids = time_ids.size(1);
        const int64_t P = text_embeds.size(1);
        SDXL_CHECK(n_ids * c.addition_time_embed_dim + P == c.projection_class_embeddings_input_dim,
                   "UNet2DConditionModel: time_ids has ", n_ids, " ids and text_embeds ", P, " features: ", n_ids,
                   " * addition_time_embed_dim ", c.addition_time_embed_dim, " + ", P, " = ",
                   n_ids * c.addition_time_embed_dim + P, ", but projection_class_embeddings_input_dim is ",
                   c.projection_class_embeddings_input_dim,
                   " (SDXL base: 6 time ids + pooled text_encoder_2 output; refiner: 5 ids with the aesthetic score)");
    }

    // ---- time embedding: sinusoidal in F32, then cast to the sample's dtype (diffusers' get_time_embed)
    const int64_t c0 = c.block_out_channels[0];
    const Tensor t = batch_timesteps(timestep, B).to(sample.device());  // [B]
    Tensor t_emb = ops::timestep_embedding(t, int(c0), c.flip_sin_to_cos, c.freq_shift, 1.0f, 10000.0f);  // [B, C0]
    Tensor emb = m.time_embedding(t_emb.to(sample.dtype()));  // [B, 4*C0]
    if (m.text_time) {
        const int64_t D = c.addition_time_embed_dim;
        const Tensor ids = time_ids.to(sample.device()).contiguous().view({B * n_ids});  // [B*n]
        Tensor time_embeds = ops::timestep_embedding(ids, int(D), c.flip_sin_to_cos, c.freq_shift, 1.0f, 10000.0f);
        time_embeds = time_embeds.view({B, n_ids * D}).to(sample.dtype());          // [B, n*D]
        const Tensor add_embeds = ops::concat({text_embeds, time_embeds}, 1);     // [B, P + n*D]
        emb = ops::add(emb, m.add_embedding(add_embeds));                          // [B, 4*C0]
    }
    const Tensor& context = encoder_hidden_states;  // [B, L, cross_attention_dim]

    // ---- down path
    Tensor x = m.conv_in(sample);  // [B, C0, H, W]
    std::vector<Tensor> skips{x};
    for (const DownBlock& block : m.down_blocks) {
        for (size_t j = 0; j < block.resnets.size(); ++j) {
            x = block.resnets[j](x, emb);                              // [B, C_i, h, w]
            if (!block.attentions.empty()) x = block.attentions[j](x, context, cross_cache);
            skips.push_back(x);
        }
        if (block.has_downsampler) {
            x = block.downsampler(x);  // [B, C_i, ceil(h/2), ceil(w/2)]
            skips.push_back(x);
        }
    }

    // ---- mid block
    x = m.mid_block.resnet0(x, emb);
    x = m.mid_block.attention(x, context, cross_cache);
    x = m.mid_block.resnet1(x, emb);  // [B, C_last, h, w]

    // ---- up path. When a side of the latent is not a multiple of 2^(number of upsamplers), each
    // upsampler is told the size of the skip it meets next (diffusers' forward_upsample_size).
    int64_t up_factor = 1;
    for (const UpBlock& block : m.up_blocks)
        if (block.has_upsampler) up_factor *= 2;
    const bool forward_upsample_size = H % up_factor != 0 || W % up_factor != 0;
    for (const UpBlock& block : m.up_blocks) {
        for (size_t j = 0; j < block.resnets.size(); ++j) {
            // skips always holds enough entries: levels*(layers_per_block+1) were pushed, as many are popped.
            const Tensor skip = skips.back();
            skips.pop_back();
            x = ops::concat({x, skip}, 1);  // [B, C_run + C_skip, h, w]
            x = block.resnets[j](x, emb);   // [B, C_level, h, w]
            if (!block.attentions.empty()) x = block.attentions[j](x, context, cross_cache);
        }
        if (block.has_upsampler) {
            if (forward_upsample_size) {
                const Tensor& next = skips.back();
                x = block.upsampler(x, next.size(2), next.size(3));  // [B, C_level, h', w'] of the next skip
            } else {
                x = block.upsampler(x);  // [B, C_level, 2h, 2w]
            }
        }
    }

    // ---- output
    x = m.conv_norm_out.with_silu(x);   // [B, C0, H, W]
    return m.conv_out(x);               // [B, out_channels, H, W]
}

}  // namespace sdxl::models
