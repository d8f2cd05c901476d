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

// diffusers 0.31 AutoencoderKL tiling (enable_tiling / tiled_decode / _tiled_encode), for images that do not
// fit in device memory in one pass. Decode: latents are cut into tiles of tile_latent = int(tile_sample_size /
// 2^(levels-1)) per side, starting every overlap_size = int(tile_latent * (1 - overlap)) rows/columns (edge tiles
// are smaller); each tile is decoded alone (post_quant_conv + decoder), then blended with the tile above and the
// tile to its left over blend_extent = int(tile_sample_size * overlap) pixel rows/columns (a linear ramp, in
// place, row by row, so a later blend reads already-blended neighbours, as diffusers does), cropped to
// row_limit = tile_sample_size - blend_extent and concatenated. Encode is the same with the roles of pixels and
// latents swapped (encoder + quant_conv per tile, the moments blended). Tiles see only their own pixels (group
// norm statistics, attention), so a tiled result differs from the one-pass result, as in diffusers.
struct VaeTiling {
    enum Mode { OFF = 0, AUTO = 1, ALWAYS = 2 };
    // OFF: one pass. AUTO: diffusers' use_tiling (tiled only when a side is larger than one tile).
    // ALWAYS: diffusers' tiled_decode / _tiled_encode called directly (tiled whatever the size).
    int mode = OFF;
    int64_t tile_sample_size = 0;  // tile_sample_min_size in pixels; 0: the config's sample_size
    double overlap = 0.25;         // tile_overlap_factor, in [0, 1)
    // A one-pass (untiled) run that fails with OUT_OF_MEMORY empties the CUDA cache and is retried tiled,
    // once, with a tile small enough to split the image; one line goes to stderr.
    bool oom_fallback = true;
};

class AutoencoderKL {
public:
    AutoencoderKL(const api::VaeConfig& config, const nn::WeightBuilder& vb);
    // z = latents / scaling_factor [B, latent_channels, h, w] -> image [B, out_channels, 8h, 8w] (about [-1, 1]),
    // with the model's tiling settings (set_tiling).
    Tensor decode(const Tensor& z) const;
    Tensor decode(const Tensor& z, const VaeTiling& tiling) const;
    // image [B, in_channels, H, W] in [-1, 1] -> the latent distribution (H, W multiples of 8)
    LatentDistribution encode(const Tensor& image) const;
    LatentDistribution encode(const Tensor& image, const VaeTiling& tiling) const;
    // diffusers' enable_tiling(): the default for decode(z) / encode(image). Shared by everything that holds
    // this model; thread-safe. Bad sizes are INVALID_ARGUMENT.
    void set_tiling(const VaeTiling& tiling);
    VaeTiling tiling() const;
    // The tile size in pixels that `tiling` resolves to (its tile_sample_size, else the config's sample_size).
    int64_t tile_sample_size(const VaeTiling& tiling) const;
    const api::VaeConfig& config() const;
    // Where the weights live and the dtype the model computes in; inputs must be on that device and dtype.
    const nn::Placement& placement() const;

    struct Impl;  // defined in the .cpp

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace sdxl::models
