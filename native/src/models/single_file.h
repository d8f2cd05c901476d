// Single-file SDXL checkpoints in the original SGM / AUTOMATIC1111 layout (what Civitai and most fine-tunes ship):
// one .safetensors holding the UNet (model.diffusion_model.*), the VAE (first_stage_model.*), CLIP-L
// (conditioner.embedders.0.transformer.*) and OpenCLIP-G (conditioner.embedders.1.model.*; the refiner has only
// OpenCLIP-G, as conditioner.embedders.0.model.*).
//
// Our models are built from diffusers key names, so each component is offered as an nn::WeightSource that answers
// diffusers keys through an explicit key map (SgmKeyMap: a table of name rules generated from the component's
// config, as the SGM numbering follows the topology). Tensors are views into the mapped file where the layout
// allows (renames, OpenCLIP's fused in_proj split into q/k/v row ranges, the VAE's 1x1-conv attention weights
// reshaped to linears); only text_projection, stored transposed, is copied. fp16/bf16 files are widened at load
// as folder weights are, and so are fp8 ones (F8_E4M3 = float8_e4m3fn, F8_E5M2; usually mixed with fp16/fp32 norms).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/weights.h"
#include "sdxl/configs.h"

namespace sdxl::io {
class SafetensorsFile;
}

namespace sdxl::models {

// How a diffusers tensor is made from the checkpoint tensor behind it.
enum class SgmOp {
    AS_IS,        // same values and shape
    ROWS,         // rows [row_begin, row_end) of a fused matrix/vector (OpenCLIP attn.in_proj_*): a view
    TRANSPOSE,    // OpenCLIP text_projection [width, proj] -> diffusers Linear [proj, width]: one small copy
    CONV1X1_AS_LINEAR,  // VAE attention q/k/v/proj_out [C, C, 1, 1] -> Linear [C, C] (a view; as-is when 2-D)
};

struct SgmSource {
    std::string key;  // full checkpoint key
    SgmOp op = SgmOp::AS_IS;
    int64_t row_begin = 0, row_end = 0;  // ROWS only
    std::string describe() const;        // "key", "key[48:96]", "key (transposed)"
};

// The key map of one component: diffusers key <-> checkpoint key. Rules map a diffusers prefix (ending in '.') to a
// checkpoint prefix, optionally renaming the module right below it through a small table (a resnet's norm1 ->
// in_layers.0), or map one exact key (text_projection.weight -> text_projection). Both directions use the longest
// matching rule, so the map is tested by round trips.
class SgmKeyMap {
public:
    static SgmKeyMap unet(const api::UNetConfig& config, const std::string& prefix = "model.diffusion_model.");
    static SgmKeyMap vae(const api::VaeConfig& config, const std::string& prefix = "first_stage_model.");
    // CLIP-L: transformers' names under the prefix, unchanged.
    static SgmKeyMap clip_l(const std::string& prefix = "conditioner.embedders.0.transformer.");
    // OpenCLIP ViT-bigG text tower -> CLIPTextModelWithProjection (num_hidden_layers, hidden_size from the config).
    static SgmKeyMap open_clip(const api::ClipTextConfig& config, const std::string& prefix);

    const std::string& prefix() const { return prefix_; }
    // The checkpoint source of a diffusers key; false if the map has no rule for it.
    bool to_checkpoint(const std::string& diffusers_key, SgmSource* out) const;
    // The diffusers keys a checkpoint key (with the prefix) feeds: one, three for a fused in_proj, none if the map
    // has no rule for it. Keys the map knows to carry no weights (OpenCLIP's logit_scale) are in `ignored`.
    std::vector<std::string> to_diffusers(const std::string& checkpoint_key) const;
    bool ignored(const std::string& checkpoint_key) const;
    // Marks every checkpoint key starting with `prefix` as carrying no weights of this component.
    void ignore_prefix(const std::string& prefix) { ignored_prefixes_.push_back(prefix); }

private:
    struct Rule {
        std::string diffusers, checkpoint;  // prefixes ending in '.', or exact keys
        bool exact = false;
        const std::vector<std::pair<const char*, const char*>>* inner = nullptr;  // module renames below the prefix
        SgmOp op = SgmOp::AS_IS;
        int part = 0, parts = 1;  // ROWS: which of `parts` equal row blocks
    };
    void add_prefix(const std::string& d, const std::string& c,
                    const std::vector<std::pair<const char*, const char*>>* inner = nullptr, SgmOp op = SgmOp::AS_IS);
    void add_exact(const std::string& d, const std::string& c, SgmOp op = SgmOp::AS_IS, int part = 0, int parts = 1);

    std::string prefix_;
    std::vector<Rule> rules_;
    std::map<std::string, size_t> by_diffusers_;                 // rule index by diffusers prefix/key
    std::multimap<std::string, size_t> by_checkpoint_;           // rule index by checkpoint prefix/key (full)
    std::vector<std::string> ignored_;                           // full checkpoint keys
    std::vector<std::string> ignored_prefixes_;                  // full checkpoint key prefixes
    int64_t row_block_ = 0;                                      // ROWS: rows per part (the width)
};

// What a checkpoint is, from its keys.
enum class SgmKind { SDXL_BASE, SDXL_REFINER };

// An opened single-file SDXL checkpoint. open() refuses (BAD_MODEL_FILE) files that are not SDXL in this layout,
// naming what they look like (SD 1.x, SD 2.x, SD3, Flux, a diffusers component, a LoRA, ...), and pickles.
class SgmCheckpoint {
public:
    static std::shared_ptr<SgmCheckpoint> open(const std::string& path);
    // Classifies a key set; throws BAD_MODEL_FILE naming `what` and what the keys look like if not SDXL.
    static SgmKind classify(const std::vector<std::string>& keys, const std::string& what);

    SgmKind kind() const { return kind_; }
    const std::string& path() const;
    const io::SafetensorsFile& file() const { return *file_; }
    // "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2" or "mixed" (of the floating tensors).
    std::string storage_dtype() const;

    // Components: "unet", "vae", "text_encoder" (base only), "text_encoder_2".
    bool has(const std::string& component) const;
    // The OpenCLIP-G prefix: conditioner.embedders.1.model. (base) or conditioner.embedders.0.model. (refiner).
    std::string open_clip_prefix() const;

    // A WeightSource answering diffusers keys of one component through `map` (keys() lists the diffusers keys
    // the component's checkpoint tensors feed; a checkpoint tensor the map has no rule for is listed under its
    // own name, so WeightBuilder::check_all_used reports it).
    std::shared_ptr<nn::WeightSource> source(const SgmKeyMap& map) const;
    // The diffusers tensor as F32 on the CPU (what source(map)->load(key) returns).
    Tensor load(const SgmKeyMap& map, const std::string& diffusers_key) const;

private:
    std::shared_ptr<io::SafetensorsFile> file_;
    SgmKind kind_ = SgmKind::SDXL_BASE;
};

// A standalone VAE weights file (--vae FILE): diffusers-named (encoder.down_blocks.*, e.g. a VAE folder's
// diffusion_pytorch_model.safetensors) or in the LDM layout that A1111 VAE downloads use (stabilityai's
// sdxl_vae.safetensors, the fp16-fix VAE: encoder.down.0.block.*, encoder.mid.attn_1.q as a 1x1 conv or a linear,
// quant_conv), possibly under first_stage_model. (then a whole SGM checkpoint's VAE) or with training entries
// (model_ema.*, loss.*) that carry no VAE weights. The layout is told from the keys.
enum class VaeFileLayout { DIFFUSERS, LDM };
struct VaeFileKind {
    VaeFileLayout layout = VaeFileLayout::DIFFUSERS;
    std::string prefix;  // LDM: "" or "first_stage_model."
};
// BAD_MODEL_FILE naming `what` when the keys are neither layout (or both).
VaeFileKind classify_vae_file(const std::vector<std::string>& keys, const std::string& what);
// The file's weights under diffusers keys: the file as it is, or through SgmKeyMap::vae (views into the mapping).
std::shared_ptr<nn::WeightSource> vae_file_source(const api::VaeConfig& config, const std::string& path);

}  // namespace sdxl::models
