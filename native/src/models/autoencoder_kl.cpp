// diffusers v0.31 AutoencoderKL (models/autoencoders/autoencoder_kl.py, vae.py Encoder/Decoder,
// unets/unet_2d_blocks.py DownEncoderBlock2D / UpDecoderBlock2D / UNetMidBlock2D). Every norm inside uses
// eps 1e-6 and norm_num_groups groups; there is no time embedding (temb_channels None).
#include "models/autoencoder_kl.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "nn/blocks.h"

namespace sdxl::models {

namespace {

constexpr float kEps = 1e-6f;

// UNetMidBlock2D (add_attention, 1 layer): resnets.0, attentions.0, resnets.1 at `channels`.
struct MidBlock {
    nn::ResnetBlock2D resnet0, resnet1;
    nn::SpatialSelfAttention attn;

    MidBlock(const nn::WeightBuilder& vb, int64_t channels, int64_t groups)
        : resnet0(vb.pp("resnets").pp(0), channels, channels, 0, groups, kEps),
          resnet1(vb.pp("resnets").pp(1), channels, channels, 0, groups, kEps),
          attn(vb.pp("attentions").pp(0), channels, groups, kEps) {}

    Tensor operator()(const Tensor& x) const { return resnet1(attn(resnet0(x, Tensor())), Tensor()); }
};

// DownEncoderBlock2D / UpDecoderBlock2D: resnets then an optional resampler.
struct Level {
    std::vector<nn::ResnetBlock2D> resnets;
    bool has_down = false, has_up = false;
    nn::Downsample2D down;
    nn::Upsample2D up;
};

void check_config(const api::VaeConfig& c) {
    SDXL_CHECK(!c.block_out_channels.empty(), "AutoencoderKL: block_out_channels is empty");
    SDXL_CHECK(c.in_channels >= 1 && c.out_channels >= 1 && c.latent_channels >= 1,
               "AutoencoderKL: in_channels, out_channels and latent_channels must be >= 1, got ", c.in_channels, ", ",
               c.out_channels, ", ", c.latent_channels);
    SDXL_CHECK(c.layers_per_block >= 1, "AutoencoderKL: layers_per_block must be >= 1, got ", c.layers_per_block);
    SDXL_CHECK(c.norm_num_groups >= 1, "AutoencoderKL: norm_num_groups must be >= 1, got ", c.norm_num_groups);
    for (int64_t ch : c.block_out_channels)
        SDXL_CHECK(ch >= 1 && ch % c.norm_num_groups == 0, "AutoencoderKL: block_out_channels entry ", ch,
                   " is not a positive multiple of norm_num_groups ", c.norm_num_groups);
}

}  // namespace

struct AutoencoderKL::Impl {
    nn::Placement placement;
    api::VaeConfig config;

    // encoder
    nn::Conv2d enc_conv_in;
    std::vector<Level> enc_levels;
    std::unique_ptr<MidBlock> enc_mid;
    nn::GroupNorm enc_norm_out;
    nn::Conv2d enc_conv_out;
    nn::Conv2d quant_conv;

    // decoder
    nn::Conv2d post_quant_conv;
    nn::Conv2d dec_conv_in;
    std::unique_ptr<MidBlock> dec_mid;
    std::vector<Level> dec_levels;
    nn::GroupNorm dec_norm_out;
    nn::Conv2d dec_conv_out;
};

AutoencoderKL::AutoencoderKL(const api::VaeConfig& config, const nn::WeightBuilder& vb)
    : impl_(std::make_shared<Impl>()) {
    check_config(config);
    Impl& m = *impl_;
    m.config = config;
    m.placement = vb.placement();
    const std::vector<int64_t>& ch = config.block_out_channels;
    const int64_t levels = int64_t(ch.size()), groups = config.norm_num_groups, lat = config.latent_channels;
    const int64_t top = ch.back();

    // ---- encoder: Encoder(double_z=True, down_block_types DownEncoderBlock2D x levels)
    const nn::WeightBuilder enc = vb.pp("encoder");
    m.enc_conv_in = nn::Conv2d(enc.pp("conv_in"), config.in_channels, ch[0], 3, 1, 1);
    int64_t out_ch = ch[0];
    for (int64_t i = 0; i < levels; ++i) {
        const nn::WeightBuilder b = enc.pp("down_blocks").pp(i);
        const int64_t in_ch = out_ch;
        out_ch = ch[size_t(i)];
        Level level;
        for (int64_t j = 0; j < config.layers_per_block; ++j)
            level.resnets.emplace_back(b.pp("resnets").pp(j), j == 0 ? in_ch : out_ch, out_ch, 0, groups, kEps);
        if (i + 1 < levels) {  // downsample_padding 0: asymmetric (0, 1, 0, 1) pad
            level.has_down = true;
            level.down = nn::Downsample2D(b.pp("downsamplers").pp(0), out_ch, 0);
        }
        m.enc_levels.push_back(std::move(level));
    }
    m.enc_mid = std::make_unique<MidBlock>(enc.pp("mid_block"), top, groups);
    m.enc_norm_out = nn::GroupNorm(enc.pp("conv_norm_out"), groups, top, kEps);
    m.enc_conv_out = nn::Conv2d(enc.pp("conv_out"), top, 2 * lat, 3, 1, 1);
    m.quant_conv = nn::Conv2d(vb.pp("quant_conv"), 2 * lat, 2 * lat, 1, 1, 0);

    // ---- decoder: Decoder(up_block_types UpDecoderBlock2D x levels), built with reversed block_out_channels
    m.post_quant_conv = nn::Conv2d(vb.pp("post_quant_conv"), lat, lat, 1, 1, 0);
    const nn::WeightBuilder dec = vb.pp("decoder");
    m.dec_conv_in = nn::Conv2d(dec.pp("conv_in"), lat, top, 3, 1, 1);
    m.dec_mid = std::make_unique<MidBlock>(dec.pp("mid_block"), top, groups);
    out_ch = top;
    for (int64_t i = 0; i < levels; ++i) {
        const nn::WeightBuilder b = dec.pp("up_blocks").pp(i);
        const int64_t in_ch = out_ch;
        out_ch = ch[size_t(levels - 1 - i)];
        Level level;
        for (int64_t j = 0; j < config.layers_per_block + 1; ++j)
            level.resnets.emplace_back(b.pp("resnets").pp(j), j == 0 ? in_ch : out_ch, out_ch, 0, groups, kEps);
        if (i + 1 < levels) {
            level.has_up = true;
            level.up = nn::Upsample2D(b.pp("upsamplers").pp(0), out_ch);
        }
        m.dec_levels.push_back(std::move(level));
    }
    m.dec_norm_out = nn::GroupNorm(dec.pp("conv_norm_out"), groups, ch[0], kEps);
    m.dec_conv_out = nn::Conv2d(dec.pp("conv_out"), ch[0], config.out_channels, 3, 1, 1);
}

const api::VaeConfig& AutoencoderKL::config() const { return impl_->config; }
const nn::Placement& AutoencoderKL::placement() const { return impl_->placement; }

Tensor AutoencoderKL::decode(const Tensor& z) const {
    const Impl& m = *impl_;
    SDXL_CHECK(z.defined() && z.dim() == 4, "AutoencoderKL.decode: z must be [B, ", m.config.latent_channels,
               ", h, w], got ", z.defined() ? z.describe() : std::string("undefined"));
    SDXL_CHECK(z.shape()[1] == m.config.latent_channels, "AutoencoderKL.decode: z ", shape_str(z.shape()), " has ",
               z.shape()[1], " channels, the VAE has latent_channels ", m.config.latent_channels);
    Tensor h = m.post_quant_conv(z);  // [B, lat, h, w]
    h = m.dec_conv_in(h);             // [B, top, h, w]
    h = (*m.dec_mid)(h);              // [B, top, h, w]
    for (const Level& level : m.dec_levels) {
        for (const auto& r : level.resnets) h = r(h, Tensor());  // [B, c_i, ...]
        if (level.has_up) h = level.up(h);                       // [B, c_i, 2x, 2x]
    }
    h = m.dec_norm_out.with_silu(h);   // [B, ch0, 8h, 8w] for 4 levels
    return m.dec_conv_out(h);          // [B, out_channels, 8h, 8w]
}

LatentDistribution AutoencoderKL::encode(const Tensor& image) const {
    const Impl& m = *impl_;
    SDXL_CHECK(image.defined() && image.dim() == 4, "AutoencoderKL.encode: image must be [B, ", m.config.in_channels,
               ", H, W], got ", image.defined() ? image.describe() : std::string("undefined"));
    SDXL_CHECK(image.shape()[1] == m.config.in_channels, "AutoencoderKL.encode: image ", shape_str(image.shape()),
               " has ", image.shape()[1], " channels, the VAE has in_channels ", m.config.in_channels);
    Tensor h = m.enc_conv_in(image);  // [B, ch0, H, W]
    for (const Level& level : m.enc_levels) {
        for (const auto& r : level.resnets) h = r(h, Tensor());  // [B, c_i, ...]
        if (level.has_down) h = level.down(h);                   // [B, c_i, floor(/2), floor(/2)]
    }
    h = (*m.enc_mid)(h);                               // [B, top, H/8, W/8] for 4 levels
    h = m.enc_conv_out(m.enc_norm_out.with_silu(h));  // [B, 2*lat, H/8, W/8]
    const Tensor moments = m.quant_conv(h);           // [B, 2*lat, H/8, W/8]

    // DiagonalGaussianDistribution: mean, logvar = chunk(moments, 2, dim=1); logvar.clamp(-30, 20);
    // std = exp(0.5 * logvar). There is no clamp/exp op; the moments are small, so this runs on the host in
    // F32 (as torch does) and the results go back to the moments' dtype and device.
    const int64_t lat = m.config.latent_channels;
    const Tensor host = moments.to(Device::CPU).to(DType::F32).contiguous();
    const Tensor mean = host.narrow(1, 0, lat).contiguous();    // [B, lat, h, w]
    const Tensor logvar = host.narrow(1, lat, lat).clone();       // [B, lat, h, w] (a fresh copy, clamped below)
    Tensor std = Tensor::empty(logvar.shape(), DType::F32);
    float* lv = logvar.data<float>();
    float* sd = std.data<float>();
    for (int64_t i = 0; i < logvar.numel(); ++i) {
        lv[i] = std::min(std::max(lv[i], -30.0f), 20.0f);  // torch.clamp; a NaN stays NaN, as in torch
        sd[i] = std::exp(0.5f * lv[i]);
    }
    auto back = [&](const Tensor& t) { return t.to(moments.dtype()).to(moments.device()); };
    LatentDistribution out;
    out.mean = back(mean);
    out.logvar = back(logvar);
    out.std = back(std);
    return out;
}

}  // namespace sdxl::models
