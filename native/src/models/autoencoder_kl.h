// diffusers AutoencoderKL: encoder (conv_in, down_blocks.{i}.resnets/downsamplers, mid_block with one
// attention, conv_norm_out, conv_out -> 2 * latent_channels moments), quant_conv, post_quant_conv, decoder
// (conv_in, mid_block, up_blocks.{i}.resnets/upsamplers (layers_per_block + 1 resnets), conv_norm_out,
// conv_out). Keys are diffusers' names.
#pragma once

#include <memory>

#include "core/tensor.h"
#include "nn/weights.h"
#include "sdxl/configs.h"

namespace sdxl::models {

// DiagonalGaussianDistribution of the encoder's moments.
struct LatentDistribution {
    Tensor mean;    // [B, latent_channels, H/8, W/8]
    Tensor logvar;  // clamped to [-30, 20] as diffusers does
    Tensor std;     // exp(0.5 * logvar)
};

class AutoencoderKL {
public:
    AutoencoderKL(const api::VaeConfig& config, const nn::WeightBuilder& vb);
    // z = latents / scaling_factor [B, latent_channels, h, w] -> image [B, out_channels, 8h, 8w] (about [-1, 1])
    Tensor decode(const Tensor& z) const;
    // image [B, in_channels, H, W] in [-1, 1] -> the latent distribution (H, W multiples of 8)
    LatentDistribution encode(const Tensor& image) const;
    const api::VaeConfig& config() const;
    // Where the weights live and the dtype the model computes in; inputs must be on that device and dtype.
    const nn::Placement& placement() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace sdxl::models
