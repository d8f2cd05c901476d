// models/AutoencoderKL: structural tests with random weights (output shapes for the 8x factor and odd sizes,
// the latent distribution's invariants, argument errors, tiling shapes and settings). The tiling arithmetic is
// checked against an independent implementation on the reference VAE in model_cases.cpp. The numbers against diffusers are checked by the
// reference tests.
#include <algorithm>
#include <cmath>
#include <vector>

#include "check.h"
#include "core/tensor.h"
#include "models/autoencoder_kl.h"

using namespace sdxl;

namespace {

Tensor vae_rnd(const Shape& shape, uint64_t seed) {
    Tensor t = Tensor::empty(shape, DType::F32);
    float* p = t.data<float>();
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (int64_t i = 0; i < t.numel(); ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = -1.0f + 2.0f * float((s >> 40) & 0xffffff) / float(1 << 24);
    }
    return t;
}

// The tiny reference VAE's shape: 4 levels (factor 8), 2 layers per block, 8 groups.
api::VaeConfig tiny_config() {
    api::VaeConfig c;
    c.in_channels = 3;
    c.out_channels = 3;
    c.latent_channels = 4;
    c.block_out_channels = {16, 32, 32, 32};
    c.layers_per_block = 2;
    c.norm_num_groups = 8;
    c.scaling_factor = 0.13025f;
    c.sample_size = 64;
    return c;
}

}  // namespace

SDXL_TEST(test_vae_shapes) {
    nn::WeightBuilder vb(nn::random_source(3, 1.0f));
    models::AutoencoderKL vae(tiny_config(), vb);
    CHECK(vae.config().block_out_channels.size() == 4);
    CHECK(vae.decode(vae_rnd({2, 4, 3, 5}, 1)).shape() == Shape({2, 3, 24, 40}));
    const models::LatentDistribution d = vae.encode(vae_rnd({2, 3, 24, 40}, 2));
    CHECK(d.mean.shape() == Shape({2, 4, 3, 5}));
    CHECK(d.logvar.shape() == Shape({2, 4, 3, 5}));
    CHECK(d.std.shape() == Shape({2, 4, 3, 5}));
    // Sides that are not multiples of 8: each asymmetric-pad downsampler floors (diffusers does the same).
    CHECK(vae.encode(vae_rnd({1, 3, 20, 13}, 3)).mean.shape() == Shape({1, 4, 2, 1}));
}

SDXL_TEST(test_vae_latent_distribution) {
    // Large weights push some log-variances past both ends of the clamp range.
    nn::WeightBuilder vb(nn::random_source(5, 10.0f));
    models::AutoencoderKL vae(tiny_config(), vb);
    const models::LatentDistribution d = vae.encode(vae_rnd({1, 3, 32, 32}, 4));
    const Tensor lv = d.logvar.contiguous(), sd = d.std.contiguous();
    bool in_range = true, std_ok = true;
    int64_t at_low = 0, at_high = 0;
    for (int64_t i = 0; i < lv.numel(); ++i) {
        const float l = lv.data<float>()[i];
        in_range = in_range && l >= -30.0f && l <= 20.0f;
        at_low += l == -30.0f;
        at_high += l == 20.0f;
        std_ok = std_ok && sd.data<float>()[i] == std::exp(0.5f * l);
    }
    CHECK(in_range);
    CHECK_MSG(at_low > 0 && at_high > 0, "clamp not exercised: " << at_low << " at -30, " << at_high << " at 20");
    CHECK(std_ok);
}

SDXL_TEST(test_vae_errors) {
    nn::WeightBuilder vb(nn::random_source(3, 1.0f));
    models::AutoencoderKL vae(tiny_config(), vb);
    CHECK_THROWS_CODE(vae.decode(vae_rnd({1, 3, 4, 4}, 1)), ErrorCode::INVALID_ARGUMENT);   // 3 latent channels
    CHECK_THROWS_CODE(vae.decode(vae_rnd({4, 4, 4}, 1)), ErrorCode::INVALID_ARGUMENT);      // 3-D
    CHECK_THROWS_CODE(vae.encode(vae_rnd({1, 4, 16, 16}, 1)), ErrorCode::INVALID_ARGUMENT); // 4 image channels
    CHECK_THROWS_CODE(vae.decode(Tensor()), ErrorCode::INVALID_ARGUMENT);
    api::VaeConfig bad = tiny_config();
    bad.block_out_channels = {16, 30};  // 30 channels in 8 groups
    CHECK_THROWS_CODE(models::AutoencoderKL(bad, vb), ErrorCode::INVALID_ARGUMENT);
    bad.block_out_channels = {};
    CHECK_THROWS_CODE(models::AutoencoderKL(bad, vb), ErrorCode::INVALID_ARGUMENT);
}

SDXL_TEST(test_vae_tiling_shapes_and_settings) {
    nn::WeightBuilder vb(nn::random_source(3, 1.0f));
    models::AutoencoderKL vae(tiny_config(), vb);
    models::VaeTiling t;
    t.mode = models::VaeTiling::ALWAYS;
    t.tile_sample_size = 32;  // 4 latent rows per tile, a tile every 3: latents 7 -> tiles at 0, 3, 6 (4, 4, 1 rows)
    CHECK(vae.decode(vae_rnd({2, 4, 7, 5}, 1), t).shape() == Shape({2, 3, 56, 40}));
    t.tile_sample_size = 32;  // a tile every 24 px (columns at 0 and 24: 4 + 2 latent columns, 3 + 2 kept)
    const models::LatentDistribution d = vae.encode(vae_rnd({1, 3, 24, 40}, 2), t);
    CHECK(d.mean.shape() == Shape({1, 4, 3, 5}));
    // AUTO leaves an image that fits one tile to the one-pass path: bit-identical.
    t.mode = models::VaeTiling::AUTO;
    t.tile_sample_size = 0;  // the config's 64 px
    const Tensor z = vae_rnd({1, 4, 8, 6}, 3);
    const Tensor a = vae.decode(z, t).contiguous(), b = vae.decode(z).contiguous();
    CHECK(std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>()));
    // The model default (diffusers' enable_tiling) is what decode(z) uses.
    CHECK(vae.tiling().mode == models::VaeTiling::OFF);
    t.tile_sample_size = 32;
    vae.set_tiling(t);
    CHECK(vae.tiling().mode == models::VaeTiling::AUTO && vae.tile_sample_size(vae.tiling()) == 32);
    const Tensor c = vae.decode(z).contiguous(), e = vae.decode(z, t).contiguous();
    CHECK(std::equal(c.data<float>(), c.data<float>() + c.numel(), e.data<float>()));
    CHECK(!std::equal(c.data<float>(), c.data<float>() + c.numel(), b.data<float>()));
    CHECK(vae.tile_sample_size(models::VaeTiling()) == 64);
}

SDXL_TEST(test_vae_tiling_errors) {
    nn::WeightBuilder vb(nn::random_source(3, 1.0f));
    models::AutoencoderKL vae(tiny_config(), vb);
    models::VaeTiling t;
    t.mode = models::VaeTiling::ALWAYS;
    t.tile_sample_size = 4;  // less than one latent element
    CHECK_THROWS_CODE(vae.decode(vae_rnd({1, 4, 4, 4}, 1), t), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(vae.set_tiling(t), ErrorCode::INVALID_ARGUMENT);
    t.tile_sample_size = 8;  // one latent row per tile, a tile every int(0.75) = 0 rows
    CHECK_THROWS_CODE(vae.decode(vae_rnd({1, 4, 4, 4}, 1), t), ErrorCode::INVALID_ARGUMENT);
    t.tile_sample_size = 32;
    t.overlap = 1.0;
    CHECK_THROWS_CODE(vae.decode(vae_rnd({1, 4, 4, 4}, 1), t), ErrorCode::INVALID_ARGUMENT);
    t.overlap = 0.25;
    t.mode = 7;
    CHECK_THROWS_CODE(vae.encode(vae_rnd({1, 3, 16, 16}, 1), t), ErrorCode::INVALID_ARGUMENT);
    t.mode = models::VaeTiling::AUTO;
    t.tile_sample_size = -1;
    CHECK_THROWS_CODE(vae.set_tiling(t), ErrorCode::INVALID_ARGUMENT);
    CHECK(vae.tiling().mode == models::VaeTiling::OFF);  // a refused setting changes nothing
}
