// LoRA files as overlays on a model's weights: kohya / AUTOMATIC1111 files (`lora_unet_*`, `lora_te1_*`,
// `lora_te2_*` with `.lora_down.weight`, `.lora_up.weight`, `.alpha`; UNet names in the SGM numbering
// `input_blocks_4_1_...` or the diffusers-path style `down_blocks_1_attentions_0_...`; LoCon convs), LyCORIS LoHa
// (`.hada_w1_a/_b`, `.hada_w2_a/_b`, Tucker `.hada_t1/_t2`) and LoKr (`.lokr_w1` or `.lokr_w1_a/_b`, `.lokr_w2` or
// `.lokr_w2_a/_b`, Tucker `.lokr_t2`) under the same names, and diffusers / PEFT files
// (`unet.<module>.lora_A.weight` / `.lora_B.weight`, `text_encoder.`, `text_encoder_2.`; no alpha).
//
// Each LoRA of a set is applied in one of two modes:
//  - fused (diffusers' fuse_lora): W' = W + sum_i s_i * (alpha_i / r_i) * ΔW_i (LoRA: ΔW = up @ down), written into
//    the weight the model computes with. Before its first change a touched weight is copied exactly (host, its own
//    dtype): only the touched tensors, never the whole model; a weight no fused LoRA touches any more gets those
//    bytes back, so unloading restores the original weights bit for bit.
//  - unfused (run time, PEFT's forward): the weights are never modified; each touched Linear / Conv2d gets an
//    nn::Adapter in its slot and computes W x + b + sum_i s_i * (alpha_i / r_i) * up_i(down_i(x)) (LoCon: down a
//    kh x kw conv with the layer's stride and padding, up 1x1). Changing a scale or unloading rebuilds only those
//    small adapters. LoHa / LoKr have no low-rank form: unfused, their scaled ΔW is kept beside the weight (dense).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/weights.h"
#include "sdxl/configs.h"

namespace sdxl::models {

enum class LoraKind { LORA, LOHA, LOKR };

struct LoraModule {
    std::string component;  // "unet", "text_encoder" or "text_encoder_2"
    std::string name;       // as in the file (for messages): "lora_unet_input_blocks_4_1_..." or "unet.down_blocks..."
    std::string kohya;      // kohya: the name after lora_unet_ / lora_te1_ / lora_te2_ ("_"-joined); PEFT: empty
    std::string path;       // PEFT: the diffusers module path ("down_blocks.1.attentions.0...to_q"); kohya: empty
    LoraKind kind = LoraKind::LORA;
    // All F32 on the CPU, the stored values.
    Tensor down, up;  // LoRA: down [r, in(, kh, kw)], up [out, r(, 1, 1)]
    // LoHa: w1a/w2a [out, r], w1b/w2b [r, in * kh * kw]; Tucker: t1/t2 [r, r, kh, kw], w1a/w2a [r, out], w1b/w2b [r, in].
    // LoKr: w1 [a, c] or w1a [a, r] @ w1b [r, c]; w2 [b, d(, kh, kw)] or w2a [b, r] @ w2b [r, d * kh * kw], or
    // Tucker t2 [r, r, kh, kw] with w2a [r, b], w2b [r, d].
    Tensor w1a, w1b, w2a, w2b, t1, t2, w1, w2;
    // LoHa / LoKr: the shape of ΔW, [out, in, kh, kw] or [out, K] where K is in * kh * kw of a conv in its memory
    // order (the files store conv factors flattened).
    Shape delta_shape;
    int64_t rank = 0;
    // kohya LoRA: .alpha (rank when absent); PEFT: diffusers 0.31's rule; LoHa / LoKr: LyCORIS's rules (see lora.cpp).
    double alpha = 0;
};

class LoraFile {
public:
    // Parses a LoRA file. BAD_MODEL_FILE for structural errors (a down without its up, mismatched ranks, tensors
    // that are not 2-D/4-D matrices, LoHa/LoKr factors that do not fit together, non-float dtypes, a bad alpha) and,
    // unless `lenient`, for keys that are not LoRA tensors of a known format (all listed; LyCORIS kinds we do not
    // run, such as OFT/BOFT or DoRA, named); lenient skips those (ignored()).
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

// ΔW of a LoHa or LoKr module before any scaling, F32 on the CPU, contiguous, shaped m.delta_shape.
Tensor lycoris_delta(const LoraModule& m);

struct LoraEntry {
    std::shared_ptr<const LoraFile> file;
    double scale = 1.0;
    bool fused = true;  // false: run-time adapters
};
using LoraStack = std::vector<LoraEntry>;  // applied in order

struct LoraApplied {
    std::vector<std::string> skipped;  // modules of lenient files that matched nothing
    bool adapters_changed = false;     // some layer's run-time adapters were set or removed
};

// Makes `loras` (possibly empty) the set applied to one component, replacing the previous set: fused entries into
// the weights, unfused ones as run-time adapters. component: "unet" (unet_config needed for kohya's SGM names) or
// "text_encoder" / "text_encoder_2". Every module of that component must match a weight of the model with
// compatible shapes (and, unfused, a layer), else BAD_MODEL_FILE listing the unmatched ones and nothing is changed;
// a lenient file's unmatched modules are skipped and returned. Bumps table.version. The caller holds
// table.run_mutex exclusively (no forward pass runs meanwhile).
LoraApplied apply_loras(nn::WeightTable& table, const std::string& component, const api::UNetConfig* unet_config,
                        const LoraStack& loras);

}  // namespace sdxl::models
