// diffusers v0.31 AutoencoderKL (models/autoencoders/autoencoder_kl.py, vae.py Encoder/Decoder,
// unets/unet_2d_blocks.py DownEncoderBlock2D / UpDecoderBlock2D / UNetMidBlock2D). Every norm inside uses
// eps 1e-6 and norm_num_groups groups; there is no time embedding (temb_channels None).
#include "models/autoencoder_kl.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <vector>

#include "core/device.h"
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
    SDXL_CHECK(c.sample_size >= 1, "AutoencoderKL: sample_size must be >= 1, got ", c.sample_size);
}

// A decoded (or encoded) tile on the host in F32, [B, C, h, w] contiguous, blended in place.
struct HostTile {
    int64_t b = 0, c = 0, h = 0, w = 0;
    std::vector<float> v;
    size_t index(int64_t n, int64_t ch, int64_t y, int64_t x) const { return size_t(((n * c + ch) * h + y) * w + x); }
    float& at(int64_t n, int64_t ch, int64_t y, int64_t x) { return v[index(n, ch, y, x)]; }
    float at(int64_t n, int64_t ch, int64_t y, int64_t x) const { return v[index(n, ch, y, x)]; }
};

HostTile to_host_tile(const Tensor& t) {
    const Tensor f = t.to(Device::CPU).to(DType::F32).contiguous();  // [B, C, h, w]
    HostTile out;
    out.b = f.shape()[0];
    out.c = f.shape()[1];
    out.h = f.shape()[2];
    out.w = f.shape()[3];
    out.v.assign(f.data<float>(), f.data<float>() + f.numel());
    return out;
}

// diffusers' blend_v / blend_h: b's first `extent` rows (columns) become a linear ramp from a's last ones,
// b = a * (1 - y / extent) + b * (y / extent), the weights rounded to float as torch does with a Python float.
void blend_v(const HostTile& a, HostTile& b, int64_t extent) {
    extent = std::min({a.h, b.h, extent});
    for (int64_t y = 0; y < extent; ++y) {
        const float wa = float(1.0 - double(y) / double(extent)), wb = float(double(y) / double(extent));
        for (int64_t n = 0; n < b.b; ++n)
            for (int64_t ch = 0; ch < b.c; ++ch)
                for (int64_t x = 0; x < b.w; ++x)
                    b.at(n, ch, y, x) = a.at(n, ch, a.h - extent + y, x) * wa + b.at(n, ch, y, x) * wb;
    }
}

void blend_h(const HostTile& a, HostTile& b, int64_t extent) {
    extent = std::min({a.w, b.w, extent});
    for (int64_t x = 0; x < extent; ++x) {
        const float wa = float(1.0 - double(x) / double(extent)), wb = float(double(x) / double(extent));
        for (int64_t n = 0; n < b.b; ++n)
            for (int64_t ch = 0; ch < b.c; ++ch)
                for (int64_t y = 0; y < b.h; ++y)
                    b.at(n, ch, y, x) = a.at(n, ch, y, a.w - extent + x) * wa + b.at(n, ch, y, x) * wb;
    }
}

// diffusers' tiling loop, shared by decode and encode: `in` [B, C, H, W] is cut into tiles of `in_tile` per
// side starting every `step`; `run` maps a tile to its output ([B, C', h', w']); the outputs are blended over
// `blend` rows/columns, cropped to `row_limit` and concatenated. Returns F32 on the host.
template <typename Run>
Tensor tiled(const Tensor& in, int64_t in_tile, int64_t step, int64_t blend, int64_t row_limit, const Run& run) {
    const int64_t H = in.shape()[2], W = in.shape()[3];
    std::vector<std::vector<HostTile>> rows;
    for (int64_t i = 0; i < H; i += step) {
        std::vector<HostTile> row;
        for (int64_t j = 0; j < W; j += step) {
            const Tensor tile = in.narrow(2, i, std::min(in_tile, H - i)).narrow(3, j, std::min(in_tile, W - j));
            row.push_back(to_host_tile(run(tile.contiguous())));
        }
        rows.push_back(std::move(row));
    }
    // Blend each tile with the one above and the one to its left (both already blended), in diffusers' order.
    for (size_t i = 0; i < rows.size(); ++i)
        for (size_t j = 0; j < rows[i].size(); ++j) {
            if (i > 0) blend_v(rows[i - 1][j], rows[i][j], blend);
            if (j > 0) blend_h(rows[i][j - 1], rows[i][j], blend);
        }
    // Crop every tile to row_limit and concatenate.
    const HostTile& first = rows[0][0];
    int64_t out_h = 0, out_w = 0;
    for (const auto& row : rows) out_h += std::min(row_limit, row[0].h);
    for (const HostTile& t : rows[0]) out_w += std::min(row_limit, t.w);
    Tensor out = Tensor::empty({first.b, first.c, out_h, out_w}, DType::F32);  // [B, C', H', W']
    float* o = out.data<float>();
    int64_t y0 = 0;
    for (auto& row : rows) {
        int64_t x0 = 0;
        const int64_t th = std::min(row_limit, row[0].h);
        for (HostTile& t : row) {
            const int64_t tw = std::min(row_limit, t.w);
            for (int64_t n = 0; n < t.b; ++n)
                for (int64_t ch = 0; ch < t.c; ++ch)
                    for (int64_t y = 0; y < th; ++y)
                        std::copy_n(&t.at(n, ch, y, 0), tw, o + ((n * t.c + ch) * out_h + y0 + y) * out_w + x0);
            x0 += tw;
        }
        y0 += th;
    }
    return out;
}

void check_tiling(const VaeTiling& t) {
    SDXL_CHECK(t.mode == VaeTiling::OFF || t.mode == VaeTiling::AUTO || t.mode == VaeTiling::ALWAYS,
               "AutoencoderKL: tiling mode must be 0 (off), 1 (auto) or 2 (always), got ", t.mode);
    SDXL_CHECK(t.tile_sample_size >= 0, "AutoencoderKL: tile_sample_size must be >= 0 (0: the config's sample_size), got ",
               t.tile_sample_size);
    SDXL_CHECK(t.overlap >= 0.0 && t.overlap < 1.0, "AutoencoderKL: tile overlap must be in [0, 1), got ", t.overlap);
}

// diffusers' tile geometry for one direction: `in_tile` input elements per tile side, a tile every `step`,
// `blend` output rows blended, `row_limit` output rows kept per tile.
struct Geometry {
    int64_t in_tile, step, blend, row_limit;
};

// Decode: tiles in latents, blend in pixels.
Geometry decode_geometry(int64_t tile_sample, int64_t factor, double overlap) {
    const int64_t tile_latent = tile_sample / factor;  // int(sample_size / 2 ** (levels - 1))
    const int64_t step = int64_t(double(tile_latent) * (1.0 - overlap));
    const int64_t blend = int64_t(double(tile_sample) * overlap);
    SDXL_CHECK(tile_latent >= 1 && step >= 1, "AutoencoderKL: tile_sample_size ", tile_sample, " with overlap ",
               overlap, " gives ", tile_latent, " latent rows per tile and a tile every ", step,
               "; both must be >= 1 (tile_sample_size >= ", factor, " and a smaller overlap)");
    return {tile_latent, step, blend, tile_sample - blend};
}

// Encode: tiles in pixels, blend in latents.
Geometry encode_geometry(int64_t tile_sample, int64_t factor, double overlap) {
    const int64_t tile_latent = tile_sample / factor;
    const int64_t step = int64_t(double(tile_sample) * (1.0 - overlap));
    const int64_t blend = int64_t(double(tile_latent) * overlap);
    SDXL_CHECK(tile_latent >= 1 && step >= 1, "AutoencoderKL: tile_sample_size ", tile_sample, " with overlap ",
               overlap, " gives ", tile_latent, " latent rows per tile and a tile every ", step,
               " pixels; both must be >= 1 (tile_sample_size >= ", factor, ")");
    return {tile_sample, step, blend, tile_latent - blend};
}

// The OOM fallback's tile in pixels: the requested one, halved until a tile is smaller than `side` latent
// elements (`unit` pixels each); 0 when no tile of at least 2 latent elements per side is smaller.
int64_t fallback_tile(int64_t tile_sample, int64_t side, int64_t unit) {
    int64_t s = tile_sample;
    while (s / unit >= side && (s / 2) / unit >= 2) s /= 2;
    return s / unit < side ? s : 0;
}

bool is_oom(const Error& e) { return e.code() == ErrorCode::OUT_OF_MEMORY; }

}  // namespace

struct AutoencoderKL::Impl {
    nn::Placement placement;
    api::VaeConfig config;
    int64_t factor = 1;  // 2^(levels - 1): pixels per latent element

    mutable std::mutex tiling_mu;
    VaeTiling tiling;  // set_tiling's default

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
    m.factor = int64_t(1) << (config.block_out_channels.size() - 1);
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

namespace {

void check_latents(const api::VaeConfig& c, const Tensor& z) {
    SDXL_CHECK(z.defined() && z.dim() == 4, "AutoencoderKL.decode: z must be [B, ", c.latent_channels,
               ", h, w], got ", z.defined() ? z.describe() : std::string("undefined"));
    SDXL_CHECK(z.shape()[1] == c.latent_channels, "AutoencoderKL.decode: z ", shape_str(z.shape()), " has ",
               z.shape()[1], " channels, the VAE has latent_channels ", c.latent_channels);
}

void check_image(const api::VaeConfig& c, const Tensor& image) {
    SDXL_CHECK(image.defined() && image.dim() == 4, "AutoencoderKL.encode: image must be [B, ", c.in_channels,
               ", H, W], got ", image.defined() ? image.describe() : std::string("undefined"));
    SDXL_CHECK(image.shape()[1] == c.in_channels, "AutoencoderKL.encode: image ", shape_str(image.shape()), " has ",
               image.shape()[1], " channels, the VAE has in_channels ", c.in_channels);
}

}  // namespace

void AutoencoderKL::set_tiling(const VaeTiling& tiling) {
    check_tiling(tiling);
    if (tiling.tile_sample_size > 0) (void)decode_geometry(tiling.tile_sample_size, impl_->factor, tiling.overlap);
    std::lock_guard<std::mutex> lock(impl_->tiling_mu);
    impl_->tiling = tiling;
}

VaeTiling AutoencoderKL::tiling() const {
    std::lock_guard<std::mutex> lock(impl_->tiling_mu);
    return impl_->tiling;
}

int64_t AutoencoderKL::tile_sample_size(const VaeTiling& tiling) const {
    return tiling.tile_sample_size > 0 ? tiling.tile_sample_size : impl_->config.sample_size;
}

Tensor AutoencoderKL::decode(const Tensor& z) const { return decode(z, tiling()); }

// post_quant_conv + decoder in one pass.
static Tensor decode_pass(const AutoencoderKL::Impl& m, const Tensor& z) {
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

// encoder + quant_conv in one pass: the moments [B, 2*lat, H/8, W/8].
static Tensor encode_pass(const AutoencoderKL::Impl& m, const Tensor& image) {
    Tensor h = m.enc_conv_in(image);  // [B, ch0, H, W]
    for (const Level& level : m.enc_levels) {
        for (const auto& r : level.resnets) h = r(h, Tensor());  // [B, c_i, ...]
        if (level.has_down) h = level.down(h);                   // [B, c_i, floor(/2), floor(/2)]
    }
    h = (*m.enc_mid)(h);                               // [B, top, H/8, W/8] for 4 levels
    h = m.enc_conv_out(m.enc_norm_out.with_silu(h));  // [B, 2*lat, H/8, W/8]
    return m.quant_conv(h);                           // [B, 2*lat, H/8, W/8]
}

// diffusers' tiled_decode at tile size `tile_sample`; the result in the model's dtype and device.
static Tensor tiled_decode(const AutoencoderKL::Impl& m, const Tensor& z, int64_t tile_sample, double overlap) {
    const Geometry g = decode_geometry(tile_sample, m.factor, overlap);
    const Tensor out = tiled(z, g.in_tile, g.step, g.blend, g.row_limit,
                             [&](const Tensor& tile) { return decode_pass(m, tile); });  // [B, C, H', W'] F32 host
    return out.to(m.placement.dtype).to(m.placement.device);
}

static Tensor tiled_encode(const AutoencoderKL::Impl& m, const Tensor& image, int64_t tile_sample, double overlap) {
    const Geometry g = encode_geometry(tile_sample, m.factor, overlap);
    const Tensor out = tiled(image, g.in_tile, g.step, g.blend, g.row_limit,
                             [&](const Tensor& tile) { return encode_pass(m, tile); });  // [B, 2*lat, h', w'] F32 host
    return out.to(m.placement.dtype).to(m.placement.device);
}

// One pass; on OUT_OF_MEMORY (and with the fallback on) the CUDA cache is emptied and `retry(tile)` runs once
// with a tile smaller than the input's larger side (`side`, in latent elements).
template <typename Pass, typename Retry>
static Tensor with_oom_fallback(const AutoencoderKL::Impl& m, const char* what, const Tensor& in, int64_t tile_sample,
                                int64_t side, bool fallback, const Pass& pass, const Retry& retry) {
    try {
        return pass();
    } catch (const Error& e) {
        if (!fallback || !is_oom(e)) throw;
        const int64_t tile = fallback_tile(tile_sample, side, m.factor);
        if (tile == 0) throw;
        if (m.placement.device == Device::CUDA) device::cuda_empty_cache();
        std::fprintf(stderr, "sdxl4j: VAE %s of %s ran out of memory; CUDA cache emptied, retrying tiled with "
                     "%lld px tiles (diffusers' enable_vae_tiling)\n", what, shape_str(in.shape()).c_str(),
                     (long long)tile);
        return retry(tile);
    }
}

Tensor AutoencoderKL::decode(const Tensor& z, const VaeTiling& t) const {
    const Impl& m = *impl_;
    check_latents(m.config, z);
    check_tiling(t);
    const int64_t tile_sample = tile_sample_size(t);
    const int64_t tile_latent = tile_sample / m.factor;
    const bool tile = t.mode == VaeTiling::ALWAYS ||
                      (t.mode == VaeTiling::AUTO && (z.shape()[2] > tile_latent || z.shape()[3] > tile_latent));
    if (tile) return tiled_decode(m, z, tile_sample, t.overlap);
    return with_oom_fallback(
        m, "decode", z, tile_sample, std::max(z.shape()[2], z.shape()[3]), t.oom_fallback, [&] { return decode_pass(m, z); },
        [&](int64_t tile_px) { return tiled_decode(m, z, tile_px, t.overlap); });
}

LatentDistribution AutoencoderKL::encode(const Tensor& image) const { return encode(image, tiling()); }

LatentDistribution AutoencoderKL::encode(const Tensor& image, const VaeTiling& t) const {
    const Impl& m = *impl_;
    check_image(m.config, image);
    check_tiling(t);
    const int64_t tile_sample = tile_sample_size(t);
    // diffusers 0.31 _encode: tiled when the image's width or height exceeds tile_sample_min_size.
    const bool tile = t.mode == VaeTiling::ALWAYS ||
                      (t.mode == VaeTiling::AUTO && (image.shape()[2] > tile_sample || image.shape()[3] > tile_sample));
    const Tensor moments =
        tile ? tiled_encode(m, image, tile_sample, t.overlap)
             : with_oom_fallback(
                   m, "encode", image, tile_sample,
                   (std::max(image.shape()[2], image.shape()[3]) + m.factor - 1) / m.factor, t.oom_fallback, [&] { return encode_pass(m, image); },
                   [&](int64_t tile_px) { return tiled_encode(m, image, tile_px, t.overlap); });

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
