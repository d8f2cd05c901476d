#include "models/single_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "io/safetensors.h"

namespace sdxl::models {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Module renames right below a rule's prefix. SGM's ResBlock: in_layers = [GroupNorm, SiLU, Conv], emb_layers =
// [SiLU, Linear], out_layers = [GroupNorm, SiLU, Dropout, Conv] (hence .0/.2, .1, .0/.3).
using Inner = std::vector<std::pair<const char*, const char*>>;
const Inner kUNetResnet = {{"norm1", "in_layers.0"},  {"conv1", "in_layers.2"},  {"time_emb_proj", "emb_layers.1"},
                           {"norm2", "out_layers.0"}, {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"}};
// The VAE's ResnetBlock keeps diffusers' names except the shortcut.
const Inner kVaeResnet = {{"norm1", "norm1"}, {"conv1", "conv1"},  {"norm2", "norm2"},
                          {"conv2", "conv2"}, {"conv_shortcut", "nin_shortcut"}};
// The VAE's AttnBlock: 1x1 convs q/k/v/proj_out (diffusers: Linear to_q/to_k/to_v/to_out.0).
const Inner kVaeAttention = {
    {"group_norm", "norm"}, {"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"}};

// Applies an inner table to the remainder below a prefix, in either direction; false if no entry matches.
bool rename_inner(const Inner& inner, const std::string& rest, bool to_checkpoint, std::string* out) {
    for (const auto& [d, c] : inner) {
        const std::string from = std::string(to_checkpoint ? d : c) + ".";
        if (starts_with(rest, from)) {
            *out = std::string(to_checkpoint ? c : d) + "." + rest.substr(from.size());
            return true;
        }
    }
    return false;
}

const char* kind_name(SgmKind k) { return k == SgmKind::SDXL_BASE ? "SDXL base" : "SDXL refiner"; }

}  // namespace

std::string SgmSource::describe() const {
    switch (op) {
        case SgmOp::ROWS: return key + "[" + std::to_string(row_begin) + ":" + std::to_string(row_end) + "]";
        case SgmOp::TRANSPOSE: return key + " (transposed)";
        case SgmOp::CONV1X1_AS_LINEAR: return key + " (1x1 conv as linear)";
        default: return key;
    }
}

// ================================================================================================ key maps

void SgmKeyMap::add_prefix(const std::string& d, const std::string& c, const Inner* inner, SgmOp op) {
    Rule r;
    r.diffusers = d + ".";
    r.checkpoint = prefix_ + c + ".";
    r.inner = inner;
    r.op = op;
    rules_.push_back(r);
    by_diffusers_[r.diffusers] = rules_.size() - 1;
    by_checkpoint_.emplace(r.checkpoint, rules_.size() - 1);
}

void SgmKeyMap::add_exact(const std::string& d, const std::string& c, SgmOp op, int part, int parts) {
    Rule r;
    r.diffusers = d;
    r.checkpoint = prefix_ + c;
    r.exact = true;
    r.op = op;
    r.part = part;
    r.parts = parts;
    rules_.push_back(r);
    by_diffusers_[r.diffusers] = rules_.size() - 1;
    by_checkpoint_.emplace(r.checkpoint, rules_.size() - 1);
}

// SGM's UNetModel numbering: input_blocks[0] = conv_in, then per level `layers_per_block` blocks of
// [ResBlock, SpatialTransformer?] and (not on the last level) one Downsample; middle_block = [ResBlock,
// SpatialTransformer, ResBlock]; output_blocks: per level `layers_per_block + 1` blocks of [ResBlock,
// SpatialTransformer?, Upsample? (last block of a level that is not the last)]. Derived from the config, so the
// base (3 levels, no attention on level 0) and the refiner (4 levels, attention on levels 1-2) both follow.
SgmKeyMap SgmKeyMap::unet(const api::UNetConfig& cfg, const std::string& prefix) {
    SgmKeyMap m;
    m.prefix_ = prefix;
    const int64_t levels = int64_t(cfg.block_out_channels.size());
    const int64_t lpb = cfg.layers_per_block;
    SDXL_CHECK(int64_t(cfg.down_block_types.size()) == levels && int64_t(cfg.up_block_types.size()) == levels,
               "SgmKeyMap::unet: block types do not match block_out_channels");
    m.add_prefix("conv_in", "input_blocks.0.0");
    m.add_prefix("time_embedding.linear_1", "time_embed.0");
    m.add_prefix("time_embedding.linear_2", "time_embed.2");
    m.add_prefix("add_embedding.linear_1", "label_emb.0.0");
    m.add_prefix("add_embedding.linear_2", "label_emb.0.2");
    for (int64_t i = 0; i < levels; ++i) {
        const bool attn = cfg.down_block_types[size_t(i)] == "CrossAttnDownBlock2D";
        const std::string d = "down_blocks." + std::to_string(i);
        for (int64_t j = 0; j < lpb; ++j) {
            const std::string c = "input_blocks." + std::to_string(1 + i * (lpb + 1) + j);
            m.add_prefix(d + ".resnets." + std::to_string(j), c + ".0", &kUNetResnet);
            if (attn) m.add_prefix(d + ".attentions." + std::to_string(j), c + ".1");
        }
        if (i + 1 < levels)
            m.add_prefix(d + ".downsamplers.0.conv", "input_blocks." + std::to_string(1 + i * (lpb + 1) + lpb) + ".0.op");
    }
    m.add_prefix("mid_block.resnets.0", "middle_block.0", &kUNetResnet);
    m.add_prefix("mid_block.attentions.0", "middle_block.1");
    m.add_prefix("mid_block.resnets.1", "middle_block.2", &kUNetResnet);
    for (int64_t i = 0; i < levels; ++i) {
        const bool attn = cfg.up_block_types[size_t(i)] == "CrossAttnUpBlock2D";
        const std::string d = "up_blocks." + std::to_string(i);
        for (int64_t j = 0; j <= lpb; ++j) {
            const std::string c = "output_blocks." + std::to_string(i * (lpb + 1) + j);
            m.add_prefix(d + ".resnets." + std::to_string(j), c + ".0", &kUNetResnet);
            if (attn) m.add_prefix(d + ".attentions." + std::to_string(j), c + ".1");
        }
        if (i + 1 < levels)
            m.add_prefix(d + ".upsamplers.0.conv",
                         "output_blocks." + std::to_string(i * (lpb + 1) + lpb) + (attn ? ".2" : ".1") + ".conv");
    }
    m.add_prefix("conv_norm_out", "out.0");
    m.add_prefix("conv_out", "out.2");
    return m;
}

// The LDM AutoencoderKL: encoder.down[i].block[j] / .downsample, mid.block_1 / attn_1 / block_2, norm_out; the
// decoder's up[] runs in reverse order of diffusers' up_blocks (up[levels-1] is the first to run).
SgmKeyMap SgmKeyMap::vae(const api::VaeConfig& cfg, const std::string& prefix) {
    SgmKeyMap m;
    m.prefix_ = prefix;
    const int64_t levels = int64_t(cfg.block_out_channels.size());
    const int64_t lpb = cfg.layers_per_block;
    for (const char* part : {"encoder", "decoder"}) {
        const std::string p = part;
        m.add_prefix(p + ".conv_in", p + ".conv_in");
        m.add_prefix(p + ".mid_block.resnets.0", p + ".mid.block_1", &kVaeResnet);
        m.add_prefix(p + ".mid_block.attentions.0", p + ".mid.attn_1", &kVaeAttention, SgmOp::CONV1X1_AS_LINEAR);
        m.add_prefix(p + ".mid_block.resnets.1", p + ".mid.block_2", &kVaeResnet);
        m.add_prefix(p + ".conv_norm_out", p + ".norm_out");
        m.add_prefix(p + ".conv_out", p + ".conv_out");
    }
    for (int64_t i = 0; i < levels; ++i) {
        const std::string d = "encoder.down_blocks." + std::to_string(i), c = "encoder.down." + std::to_string(i);
        for (int64_t j = 0; j < lpb; ++j)
            m.add_prefix(d + ".resnets." + std::to_string(j), c + ".block." + std::to_string(j), &kVaeResnet);
        if (i + 1 < levels) m.add_prefix(d + ".downsamplers.0.conv", c + ".downsample.conv");
    }
    for (int64_t i = 0; i < levels; ++i) {
        const std::string d = "decoder.up_blocks." + std::to_string(i),
                          c = "decoder.up." + std::to_string(levels - 1 - i);
        for (int64_t j = 0; j <= lpb; ++j)
            m.add_prefix(d + ".resnets." + std::to_string(j), c + ".block." + std::to_string(j), &kVaeResnet);
        if (i + 1 < levels) m.add_prefix(d + ".upsamplers.0.conv", c + ".upsample.conv");
    }
    m.add_prefix("quant_conv", "quant_conv");
    m.add_prefix("post_quant_conv", "post_quant_conv");
    return m;
}

SgmKeyMap SgmKeyMap::clip_l(const std::string& prefix) {
    SgmKeyMap m;
    m.prefix_ = prefix;
    m.add_prefix("text_model", "text_model");
    return m;
}

// open_clip's text tower: token_embedding, positional_embedding (a bare parameter), transformer.resblocks[i] with
// ln_1 / attn (nn.MultiheadAttention: in_proj = cat(q, k, v) rows) / ln_2 / mlp.c_fc, c_proj; ln_final;
// text_projection [width, proj] applied as x @ P (diffusers: Linear weight [proj, width]).
SgmKeyMap SgmKeyMap::open_clip(const api::ClipTextConfig& cfg, const std::string& prefix) {
    SgmKeyMap m;
    m.prefix_ = prefix;
    m.row_block_ = cfg.hidden_size;
    m.add_prefix("text_model.embeddings.token_embedding", "token_embedding");
    m.add_exact("text_model.embeddings.position_embedding.weight", "positional_embedding");
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
        const std::string d = "text_model.encoder.layers." + std::to_string(i),
                          c = "transformer.resblocks." + std::to_string(i);
        m.add_prefix(d + ".layer_norm1", c + ".ln_1");
        m.add_prefix(d + ".layer_norm2", c + ".ln_2");
        m.add_prefix(d + ".self_attn.out_proj", c + ".attn.out_proj");
        m.add_prefix(d + ".mlp.fc1", c + ".mlp.c_fc");
        m.add_prefix(d + ".mlp.fc2", c + ".mlp.c_proj");
        const char* qkv[3] = {"q_proj", "k_proj", "v_proj"};
        for (int part = 0; part < 3; ++part) {
            m.add_exact(d + ".self_attn." + qkv[part] + ".weight", c + ".attn.in_proj_weight", SgmOp::ROWS, part, 3);
            m.add_exact(d + ".self_attn." + qkv[part] + ".bias", c + ".attn.in_proj_bias", SgmOp::ROWS, part, 3);
        }
    }
    m.add_prefix("text_model.final_layer_norm", "ln_final");
    m.add_exact("text_projection.weight", "text_projection", SgmOp::TRANSPOSE);
    // CLIP's contrastive temperature: no part of the text model.
    m.ignored_.push_back(prefix + "logit_scale");
    return m;
}

bool SgmKeyMap::to_checkpoint(const std::string& key, SgmSource* out) const {
    auto ex = by_diffusers_.find(key);
    if (ex != by_diffusers_.end() && rules_[ex->second].exact) {
        const Rule& r = rules_[ex->second];
        out->key = r.checkpoint;
        out->op = r.op;
        out->row_begin = r.op == SgmOp::ROWS ? r.part * row_block_ : 0;
        out->row_end = r.op == SgmOp::ROWS ? (r.part + 1) * row_block_ : 0;
        return true;
    }
    // The longest prefix ending at a '.' that has a rule.
    for (size_t dot = key.rfind('.'); dot != std::string::npos && dot > 0; dot = key.rfind('.', dot - 1)) {
        auto it = by_diffusers_.find(key.substr(0, dot + 1));
        if (it == by_diffusers_.end() || rules_[it->second].exact) continue;
        const Rule& r = rules_[it->second];
        const std::string rest = key.substr(dot + 1);
        std::string renamed = rest;
        if (r.inner && !rename_inner(*r.inner, rest, true, &renamed)) return false;
        out->key = r.checkpoint + renamed;
        // The VAE's 1x1-conv attention: the linears' weights only (not the group norm, not biases).
        out->op = r.op == SgmOp::CONV1X1_AS_LINEAR && ends_with(key, ".weight") && !starts_with(rest, "group_norm.")
                      ? SgmOp::CONV1X1_AS_LINEAR
                      : SgmOp::AS_IS;
        out->row_begin = out->row_end = 0;
        return true;
    }
    return false;
}

std::vector<std::string> SgmKeyMap::to_diffusers(const std::string& key) const {
    std::vector<std::string> out;
    auto [b, e] = by_checkpoint_.equal_range(key);
    for (auto it = b; it != e; ++it)
        if (rules_[it->second].exact) out.push_back(rules_[it->second].diffusers);
    if (!out.empty()) return out;
    for (size_t dot = key.rfind('.'); dot != std::string::npos && dot > 0; dot = key.rfind('.', dot - 1)) {
        auto [pb, pe] = by_checkpoint_.equal_range(key.substr(0, dot + 1));
        for (auto it = pb; it != pe; ++it) {
            const Rule& r = rules_[it->second];
            if (r.exact) continue;
            const std::string rest = key.substr(dot + 1);
            std::string renamed = rest;
            if (r.inner && !rename_inner(*r.inner, rest, false, &renamed)) return out;
            out.push_back(r.diffusers + renamed);
            return out;
        }
    }
    return out;
}

bool SgmKeyMap::ignored(const std::string& key) const {
    for (const auto& p : ignored_prefixes_)
        if (starts_with(key, p)) return true;
    return std::find(ignored_.begin(), ignored_.end(), key) != ignored_.end();
}

// ================================================================================================ checkpoint

namespace {

bool any_with_prefix(const std::vector<std::string>& sorted, const std::string& p) {
    auto it = std::lower_bound(sorted.begin(), sorted.end(), p);
    return it != sorted.end() && starts_with(*it, p);
}

bool any_containing(const std::vector<std::string>& keys, const std::string& part) {
    for (const auto& k : keys)
        if (k.find(part) != std::string::npos) return true;
    return false;
}

// Top-level entries of SGM/LDM checkpoints that carry no model weights: the diffusion schedule buffers of LDM's
// DDPM wrapper, EMA copies and the denoiser's sigma table.
bool is_schedule_or_ema(const std::string& k) {
    static const char* kPrefixes[] = {"model_ema.", "denoiser.", "alphas_cumprod", "alphas_cumprod_prev", "betas",
                                      "log_one_minus_alphas_cumprod", "posterior_", "sqrt_alphas_cumprod",
                                      "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                                      "sqrt_recipm1_alphas_cumprod", "lvlb_weights", "logvar"};
    for (const char* p : kPrefixes)
        if (starts_with(k, p)) return true;
    return false;
}

[[noreturn]] void refuse(const std::string& what, const std::string& looks_like, const std::string& advice) {
    fail(ErrorCode::BAD_MODEL_FILE, what, ": not an SDXL single-file checkpoint: it looks like ", looks_like,
         advice.empty() ? "" : "; ", advice);
}

// Pickle (.ckpt/.pt/.bin) files: protocol 2+ starts with 0x80; torch.save's zip container with "PK\3\4".
bool looks_like_pickle(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char b[4] = {0, 0, 0, 0};
    if (!in.read(b, 4)) return false;
    return (uint8_t(b[0]) == 0x80 && uint8_t(b[1]) >= 2 && uint8_t(b[1]) <= 5) ||
           (b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4);
}

}  // namespace

SgmKind SgmCheckpoint::classify(const std::vector<std::string>& unsorted, const std::string& what) {
    std::vector<std::string> keys = unsorted;
    std::sort(keys.begin(), keys.end());
    if (keys.empty()) refuse(what, "an empty file (no tensors)", "");
    const bool unet = any_with_prefix(keys, "model.diffusion_model.");
    if (any_containing(keys, "joint_blocks.") || any_with_prefix(keys, "text_encoders."))
        refuse(what, "a Stable Diffusion 3 checkpoint (joint_blocks / text_encoders)", "sdxl4j runs SDXL only");
    if (any_containing(keys, "double_blocks.") || any_containing(keys, "single_blocks."))
        refuse(what, "a Flux checkpoint (double_blocks / single_blocks)", "sdxl4j runs SDXL only");
    if (any_with_prefix(keys, "cond_stage_model.transformer."))
        refuse(what, "a Stable Diffusion 1.x checkpoint (cond_stage_model.transformer: one CLIP-L text encoder)",
               "sdxl4j runs SDXL only");
    if (any_with_prefix(keys, "cond_stage_model.model."))
        refuse(what, "a Stable Diffusion 2.x checkpoint (cond_stage_model.model: one OpenCLIP-H text encoder)",
               "sdxl4j runs SDXL only");
    if (any_with_prefix(keys, "lora_unet_") || any_with_prefix(keys, "lora_te") || any_containing(keys, ".lora_down.") ||
        any_containing(keys, ".lora_A.") || any_containing(keys, ".lora_up."))
        refuse(what, "a LoRA file", "load it as a LoRA on top of a model");
    if (any_with_prefix(keys, "clip_l") || any_with_prefix(keys, "clip_g") || any_with_prefix(keys, "emb_params") ||
        any_with_prefix(keys, "string_to_param"))
        refuse(what, "a textual-inversion embedding", "load it as an embedding on top of a model");
    if (!unet) {
        if (any_with_prefix(keys, "down_blocks.") || any_with_prefix(keys, "encoder.down_blocks.") ||
            any_with_prefix(keys, "text_model."))
            refuse(what, "one component of a diffusers/transformers folder (diffusers key names)",
                   "load the whole diffusers folder instead");
        refuse(what, "no known layout (first key '" + keys.front() + "')",
               "expected model.diffusion_model.*, conditioner.embedders.* and first_stage_model.* keys");
    }
    const bool clip_l = any_with_prefix(keys, "conditioner.embedders.0.transformer.");
    const bool g_at_1 = any_with_prefix(keys, "conditioner.embedders.1.model.");
    const bool g_at_0 = any_with_prefix(keys, "conditioner.embedders.0.model.");
    SgmKind kind;
    if (clip_l && g_at_1) {
        kind = SgmKind::SDXL_BASE;
    } else if (g_at_0 && !any_with_prefix(keys, "conditioner.embedders.1.")) {
        kind = SgmKind::SDXL_REFINER;
    } else if (!any_with_prefix(keys, "conditioner.")) {
        refuse(what, "a UNet-only SGM checkpoint (model.diffusion_model.* without conditioner.* text encoders)",
               "sdxl4j needs the text encoders and the VAE in the file");
    } else {
        refuse(what, "an SGM checkpoint with an unknown text-encoder layout (expected conditioner.embedders.0.transformer"
                     " + conditioner.embedders.1.model for the SDXL base, or conditioner.embedders.0.model alone for the "
                     "refiner)",
               "");
    }
    if (!any_with_prefix(keys, "first_stage_model."))
        fail(ErrorCode::BAD_MODEL_FILE, what, ": an ", kind_name(kind),
             " checkpoint without its VAE (no first_stage_model.* tensors); sdxl4j needs the VAE in the file");
    // Everything must belong to a component or be a known non-weight entry.
    std::vector<std::string> unknown;
    for (const auto& k : keys) {
        if (starts_with(k, "model.diffusion_model.") || starts_with(k, "first_stage_model.") ||
            starts_with(k, "conditioner.embedders.0.") || (kind == SgmKind::SDXL_BASE && starts_with(k, "conditioner.embedders.1.")) ||
            is_schedule_or_ema(k))
            continue;
        unknown.push_back(k);
    }
    if (!unknown.empty()) {
        std::string list;
        for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
        if (unknown.size() > 5) list += " and " + std::to_string(unknown.size() - 5) + " more";
        fail(ErrorCode::BAD_MODEL_FILE, what, ": an ", kind_name(kind), " checkpoint with ", unknown.size(),
             " tensor(s) outside its components: ", list);
    }
    return kind;
}

std::shared_ptr<SgmCheckpoint> SgmCheckpoint::open(const std::string& path) {
    std::string lower = path;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    const bool pickle_name = ends_with(lower, ".ckpt") || ends_with(lower, ".pt") || ends_with(lower, ".pth") ||
                             ends_with(lower, ".bin") || ends_with(lower, ".pkl");
    if (pickle_name || looks_like_pickle(path)) {
        std::ifstream probe(path, std::ios::binary);
        if (!probe) fail(ErrorCode::NOT_FOUND, path, ": cannot open the file");
        fail(ErrorCode::BAD_MODEL_FILE, path,
             ": a PyTorch pickle checkpoint; sdxl4j never unpickles files (unpickling runs arbitrary code). Convert it "
             "to .safetensors (e.g. with safetensors' convert tool, or load it in Python with "
             "torch.load(weights_only=True) and save it with safetensors.torch.save_file), or use the .safetensors "
             "download of the model");
    }
    auto ck = std::shared_ptr<SgmCheckpoint>(new SgmCheckpoint());
    ck->file_ = io::SafetensorsFile::open(path);
    std::vector<std::string> keys;
    for (const auto& t : ck->file_->header().tensors) keys.push_back(t.name);
    ck->kind_ = classify(keys, path);
    return ck;
}

const std::string& SgmCheckpoint::path() const { return file_->path(); }

std::string SgmCheckpoint::storage_dtype() const {
    std::string found;
    for (const auto& t : file_->header().tensors) {
        if (!t.loads_as_f32()) continue;
        if (found.empty()) found = t.dtype_name;
        else if (found != t.dtype_name) return "mixed";
    }
    return found;
}

std::string SgmCheckpoint::open_clip_prefix() const {
    return kind_ == SgmKind::SDXL_BASE ? "conditioner.embedders.1.model." : "conditioner.embedders.0.model.";
}

bool SgmCheckpoint::has(const std::string& component) const {
    if (component == "unet" || component == "vae" || component == "text_encoder_2") return true;
    if (component == "text_encoder") return kind_ == SgmKind::SDXL_BASE;
    return false;
}

namespace {

class SgmComponentSource : public nn::WeightSource {
public:
    SgmComponentSource(std::shared_ptr<io::SafetensorsFile> file, SgmKeyMap map)
        : file_(std::move(file)), map_(std::move(map)) {}

    bool contains(const std::string& key) const override {
        SgmSource s;
        return map_.to_checkpoint(key, &s) && file_->find(s.key) != nullptr;
    }

    Shape shape(const std::string& key) const override {
        const SgmSource s = source(key);
        Shape sh = info(s, key).shape;
        switch (s.op) {
            case SgmOp::ROWS:
                check_rows(s, sh);
                sh[0] = s.row_end - s.row_begin;
                return sh;
            case SgmOp::TRANSPOSE:
                if (sh.size() != 2)
                    fail(ErrorCode::BAD_MODEL_FILE, file_->path(), ": tensor '", s.key, "' has shape ", shape_str(sh),
                         ", expected a 2-D [width, projection_dim] matrix");
                return {sh[1], sh[0]};
            case SgmOp::CONV1X1_AS_LINEAR:
                if (sh.size() == 4 && sh[2] == 1 && sh[3] == 1) return {sh[0], sh[1]};
                return sh;  // a 1x1 kernel of another size is reported by the shape check against the config
            default: return sh;
        }
    }

    Tensor load(const std::string& key) const override {
        const SgmSource s = source(key);
        const io::TensorInfo& inf = info(s, key);
        if (!inf.loads_as_f32())
            fail(ErrorCode::BAD_MODEL_FILE, file_->path(), ": tensor '", s.key, "' (for ", key, ") is ",
                 inf.dtype_name, ", weights must be F32, F16, BF16 or F8_E4M3 / F8_E5M2");
        if (s.op == SgmOp::ROWS) {
            check_rows(s, inf.shape);
            return file_->get_f32_rows(s.key, s.row_begin, s.row_end);  // F32: a view; others: these rows widened
        }
        Tensor t = file_->get_f32(s.key);  // F32: a view into the mapping; F16/BF16/F8: widened once
        switch (s.op) {
            case SgmOp::TRANSPOSE: {
                if (inf.shape.size() != 2)
                    fail(ErrorCode::BAD_MODEL_FILE, file_->path(), ": tensor '", s.key, "' must be 2-D");
                return t.transpose(0, 1).contiguous();  // [proj, width]
            }
            case SgmOp::CONV1X1_AS_LINEAR:
                if (inf.shape.size() == 4 && inf.shape[2] == 1 && inf.shape[3] == 1)
                    return t.view({inf.shape[0], inf.shape[1]});  // [C, C]
                return t;
            default: return t;
        }
    }

    std::vector<std::string> keys() const override {
        std::vector<std::string> out;
        for (const auto& t : file_->header().tensors) {
            if (!starts_with(t.name, map_.prefix()) || map_.ignored(t.name)) continue;
            std::vector<std::string> d = map_.to_diffusers(t.name);
            if (d.empty()) out.push_back(t.name);  // no rule: reported as unused by check_all_used
            for (auto& k : d) out.push_back(std::move(k));
        }
        return out;
    }

    std::string describe() const override {
        return map_.prefix().empty() ? file_->path() : file_->path() + " (" + map_.prefix() + "*)";
    }

    std::string origin(const std::string& key) const override {
        SgmSource s;
        return map_.to_checkpoint(key, &s) ? s.describe() : std::string();
    }

private:
    SgmSource source(const std::string& key) const {
        SgmSource s;
        if (!map_.to_checkpoint(key, &s))
            fail(ErrorCode::NOT_FOUND, describe(), ": the single-file key map has no checkpoint key for '", key, "'");
        return s;
    }
    const io::TensorInfo& info(const SgmSource& s, const std::string& key) const {
        const io::TensorInfo* inf = file_->find(s.key);
        if (!inf) fail(ErrorCode::NOT_FOUND, describe(), ": no tensor '", s.key, "' (for ", key, ")");
        return *inf;
    }
    void check_rows(const SgmSource& s, const Shape& sh) const {
        const int64_t w = s.row_end - s.row_begin;
        if (sh.empty() || sh[0] != 3 * w)
            fail(ErrorCode::BAD_MODEL_FILE, file_->path(), ": fused attention tensor '", s.key, "' has shape ",
                 shape_str(sh), "; q, k and v of width ", w, " need ", 3 * w, " rows");
    }

    std::shared_ptr<io::SafetensorsFile> file_;
    SgmKeyMap map_;
};

}  // namespace

std::shared_ptr<nn::WeightSource> SgmCheckpoint::source(const SgmKeyMap& map) const {
    return std::make_shared<SgmComponentSource>(file_, map);
}

Tensor SgmCheckpoint::load(const SgmKeyMap& map, const std::string& diffusers_key) const {
    return SgmComponentSource(file_, map).load(diffusers_key);
}

// ================================================================================================ VAE files

VaeFileKind classify_vae_file(const std::vector<std::string>& unsorted, const std::string& what) {
    std::vector<std::string> keys = unsorted;
    std::sort(keys.begin(), keys.end());
    if (keys.empty()) fail(ErrorCode::BAD_MODEL_FILE, what, ": not a VAE weights file: it holds no tensors");
    // The module names that differ between the layouts (conv_in, quant_conv, post_quant_conv are shared).
    auto has_any = [&](const std::string& p, std::initializer_list<const char*> parts) {
        for (const char* part : parts)
            if (any_with_prefix(keys, p + part)) return true;
        return false;
    };
    const bool diffusers = has_any("", {"encoder.down_blocks.", "encoder.mid_block.", "decoder.up_blocks.",
                                        "decoder.mid_block.", "encoder.conv_norm_out.", "decoder.conv_norm_out."});
    std::vector<std::string> ldm;
    for (const char* p : {"", "first_stage_model."})
        if (has_any(p, {"encoder.down.", "encoder.mid.", "decoder.up.", "decoder.mid.", "encoder.norm_out.",
                        "decoder.norm_out."}))
            ldm.push_back(p);
    if (diffusers && !ldm.empty())
        fail(ErrorCode::BAD_MODEL_FILE, what, ": a VAE file that mixes diffusers key names (encoder.down_blocks.*) ",
             "with LDM / A1111 ones (", ldm[0], "encoder.down.*); expected one layout");
    if (ldm.size() > 1)
        fail(ErrorCode::BAD_MODEL_FILE, what, ": a VAE file with LDM / A1111 keys both with and without the ",
             "first_stage_model. prefix; expected one VAE");
    if (diffusers) return {VaeFileLayout::DIFFUSERS, ""};
    if (!ldm.empty()) return {VaeFileLayout::LDM, ldm[0]};
    fail(ErrorCode::BAD_MODEL_FILE, what, ": not a VAE weights file: it has neither diffusers AutoencoderKL keys ",
         "(encoder.down_blocks.*, decoder.up_blocks.*) nor LDM / A1111 VAE keys (encoder.down.*, decoder.up.*, ",
         "optionally under first_stage_model.); first key '", keys.front(), "'");
}

std::shared_ptr<nn::WeightSource> vae_file_source(const api::VaeConfig& config, const std::string& path) {
    auto file = io::SafetensorsFile::open(path);
    std::vector<std::string> keys;
    for (const auto& t : file->header().tensors) keys.push_back(t.name);
    const VaeFileKind kind = classify_vae_file(keys, path);
    if (kind.layout == VaeFileLayout::DIFFUSERS) return nn::safetensors_source({path});
    SgmKeyMap map = SgmKeyMap::vae(config, kind.prefix);
    // Training leftovers of LDM VAE checkpoints: the EMA bookkeeping and the LPIPS/discriminator loss. Under
    // first_stage_model. everything outside the prefix is another component's (a whole checkpoint) and unused.
    if (kind.prefix.empty()) {
        map.ignore_prefix("model_ema.");
        map.ignore_prefix("loss.");
    }
    return std::make_shared<SgmComponentSource>(file, std::move(map));
}

}  // namespace sdxl::models
