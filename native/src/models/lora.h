// LoRA files as overlays on a model's weights: kohya / AUTOMATIC1111 files (`lora_unet_*`, `lora_te1_*`,
// `lora_te2_*` with `.lora_down.weight`, `.lora_up.weight`, `.alpha`; UNet names in the SGM numbering
// `input_blocks_4_1_...` or the diffusers-path style `down_blocks_1_attentions_0_...`; LoCon convs) and diffusers /
// PEFT files (`unet.<module>.lora_A.weight` / `.lora_B.weight`, `text_encoder.`, `text_encoder_2.`; no alpha).
//
// Fused (diffusers' fuse_lora): W' = W + sum_i s_i * (alpha_i / r_i) * up_i @ down_i, written into the weight the
// model computes with. Before its first change a touched weight is copied exactly (host, its own dtype): only the
// touched tensors, never the whole model; a weight no LoRA touches any more gets those bytes back, so unloading
// restores the original weights bit for bit.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/weights.h"
#include "sdxl/configs.h"

namespace sdxl::models {

struct LoraModule {
    std::string component;  // "unet", "text_encoder" or "text_encoder_2"
    std::string name;       // as in the file (for messages): "lora_unet_input_blocks_4_1_..." or "unet.down_blocks..."
    std::string kohya;      // kohya: the name after lora_unet_ / lora_te1_ / lora_te2_ ("_"-joined); PEFT: empty
    std::string path;       // PEFT: the diffusers module path ("down_blocks.1.attentions.0...to_q"); kohya: empty
    Tensor down, up;        // F32 on the CPU, the stored values: down [r, in(, kh, kw)], up [out, r(, 1, 1)]
    int64_t rank = 0;
    double alpha = 0;       // kohya: .alpha (rank when absent); PEFT: diffusers 0.31's rule (see lora.cpp)
};

class LoraFile {
public:
    // Parses a LoRA file. BAD_MODEL_FILE for structural errors (a down without its up, mismatched ranks, tensors
    // that are not 2-D/4-D matrices, non-float dtypes, a bad alpha) and, unless `lenient`, for keys that are not
    // LoRA tensors of a known format (all listed); lenient skips those (ignored()).
    static std::shared_ptr<const LoraFile> open(const std::string& path, bool lenient);

    const std::string& path() const { return path_; }
    const std::string& format() const { return format_; }  // "kohya" or "peft"
    bool lenient() const { return lenient_; }
    const std::vector<LoraModule>& modules() const { return modules_; }
    const std::vector<std::string>& ignored() const { return ignored_; }

private:
    std::string path_, format_;
    bool lenient_ = false;
    std::vector<LoraModule> modules_;
    std::vector<std::string> ignored_;
};

using LoraStack = std::vector<std::pair<std::shared_ptr<const LoraFile>, double>>;  // (file, scale), fused in order

// Makes `loras` (possibly empty) the set fused into one component's weights, replacing the previous set.
// component: "unet" (unet_config needed for kohya's SGM names) or "text_encoder" / "text_encoder_2". Every module
// of that component must match a weight of the model with compatible shapes, else BAD_MODEL_FILE listing the
// unmatched ones and nothing is changed; a lenient file's unmatched modules are skipped and returned.
std::vector<std::string> fuse_loras(nn::WeightTable& table, const std::string& component,
                                    const api::UNetConfig* unet_config, const LoraStack& loras);

}  // namespace sdxl::models
