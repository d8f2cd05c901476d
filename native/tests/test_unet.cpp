// UNet2DConditionModel structure tests on small hand-made configs with nn::random_source weights (the
// numbers against diffusers are checked from the reference cases by the Java tests): output shapes for latent
// sizes that are not multiples of 2^(levels-1) (explicit upsample sizes), timestep forms, argument and config
// errors, and the real SDXL configs' weight keys and parameter counts without allocating their weights.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "tiny_models.h"
#include "test_tensors.h"
#include "core/tensor.h"
#include "models/unet2d_condition.h"
#include "nn/weights.h"
#include "sdxl/configs.h"

using namespace sdxl;

namespace {

using sdxl_test::expect_error;
using sdxl_test::rnd;

Tensor scalar_i64(int64_t v) {
    Tensor t = Tensor::empty({}, DType::I64);
    t.data<int64_t>()[0] = v;
    return t;
}

Tensor scalar_f32(float v) {
    Tensor t = Tensor::empty({}, DType::F32);
    t.data<float>()[0] = v;
    return t;
}

Tensor vec_i64(const std::vector<int64_t>& v) {
    Tensor t = Tensor::empty({int64_t(v.size())}, DType::I64);
    for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
    return t;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    const Tensor x = a.contiguous(), y = b.contiguous();
    if (x.shape() != y.shape()) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < x.numel(); ++i)
        m = std::fmax(m, std::fabs(double(x.data<float>()[i]) - double(y.data<float>()[i])));
    return m;
}

bool all_finite(const Tensor& t) {
    const Tensor c = t.contiguous();
    for (int64_t i = 0; i < c.numel(); ++i)
        if (!std::isfinite(c.data<float>()[i])) return false;
    return true;
}


models::UNet2DConditionModel build(const api::UNetConfig& c, uint64_t seed = 7) {
    return models::UNet2DConditionModel(c, nn::WeightBuilder(nn::random_source(seed, 1.0f)));
}

struct Inputs {
    Tensor sample, context, text_embeds, time_ids;
};

Inputs inputs(int64_t B, int64_t H, int64_t W, uint64_t seed, int64_t n_ids = 5) {
    Inputs in;
    in.sample = rnd({B, 4, H, W}, seed);
    in.context = rnd({B, 7, 12}, seed + 1);
    in.text_embeds = rnd({B, 6}, seed + 2);
    in.time_ids = rnd({B, n_ids}, seed + 3, 0.0f, 1024.0f);
    return in;
}

// ------------------------------------------------------------------------------------------------------------
// The state dict diffusers' UNet2DConditionModel has for a config (key -> shape), derived here from the
// diffusers module tree independently of the model code (checked against the tiny reference checkpoints when
// this was written). Serves the real SDXL configs without their 10 GB of weights.
std::map<std::string, Shape> diffusers_state_dict_shapes(const api::UNetConfig& c) {
    std::map<std::string, Shape> s;
    auto linear = [&](const std::string& p, int64_t in, int64_t out, bool bias = true) {
        s[p + ".weight"] = {out, in};
        if (bias) s[p + ".bias"] = {out};
    };
    auto conv = [&](const std::string& p, int64_t in, int64_t out, int64_t k) {
        s[p + ".weight"] = {out, in, k, k};
        s[p + ".bias"] = {out};
    };
    auto norm = [&](const std::string& p, int64_t ch) {
        s[p + ".weight"] = {ch};
        s[p + ".bias"] = {ch};
    };
    const int64_t c0 = c.block_out_channels[0], temb = 4 * c0, ctx = c.cross_attention_dim;
    auto resnet = [&](const std::string& p, int64_t in, int64_t out) {
        norm(p + ".norm1", in);
        conv(p + ".conv1", in, out, 3);
        linear(p + ".time_emb_proj", temb, out);
        norm(p + ".norm2", out);
        conv(p + ".conv2", out, out, 3);
        if (in != out) conv(p + ".conv_shortcut", in, out, 1);
    };
    auto transformer = [&](const std::string& p, int64_t ch, int64_t layers) {
        norm(p + ".norm", ch);
        linear(p + ".proj_in", ch, ch);
        linear(p + ".proj_out", ch, ch);
        for (int64_t l = 0; l < layers; ++l) {
            const std::string b = p + ".transformer_blocks." + std::to_string(l);
            for (const char* attn : {"attn1", "attn2"}) {
                const int64_t kv = std::string(attn) == "attn1" ? ch : ctx;
                linear(b + "." + attn + ".to_q", ch, ch, false);
                linear(b + "." + attn + ".to_k", kv, ch, false);
                linear(b + "." + attn + ".to_v", kv, ch, false);
                linear(b + "." + attn + ".to_out.0", ch, ch);
            }
            norm(b + ".norm1", ch);
            norm(b + ".norm2", ch);
            norm(b + ".norm3", ch);
            linear(b + ".ff.net.0.proj", ch, 8 * ch);
            linear(b + ".ff.net.2", 4 * ch, ch);
        }
    };
    const auto& ch = c.block_out_channels;
    const size_t L = ch.size();
    conv("conv_in", c.in_channels, c0, 3);
    linear("time_embedding.linear_1", c0, temb);
    linear("time_embedding.linear_2", temb, temb);
    linear("add_embedding.linear_1", c.projection_class_embeddings_input_dim, temb);
    linear("add_embedding.linear_2", temb, temb);
    int64_t out = c0;
    for (size_t i = 0; i < L; ++i) {
        const std::string p = "down_blocks." + std::to_string(i);
        const int64_t in = out;
        out = ch[i];
        for (int64_t j = 0; j < c.layers_per_block; ++j) {
            resnet(p + ".resnets." + std::to_string(j), j == 0 ? in : out, out);
            if (c.down_block_types[i] == "CrossAttnDownBlock2D")
                transformer(p + ".attentions." + std::to_string(j), out, c.transformer_layers_per_block[i]);
        }
        if (i + 1 < L) conv(p + ".downsamplers.0.conv", out, out, 3);
    }
    resnet("mid_block.resnets.0", ch[L - 1], ch[L - 1]);
    transformer("mid_block.attentions.0", ch[L - 1], c.transformer_layers_per_block[L - 1]);
    resnet("mid_block.resnets.1", ch[L - 1], ch[L - 1]);
    out = ch[L - 1];
    for (size_t i = 0; i < L; ++i) {
        const std::string p = "up_blocks." + std::to_string(i);
        const size_t level = L - 1 - i;
        const int64_t prev = out, below = ch[level == 0 ? 0 : level - 1];
        out = ch[level];
        for (int64_t j = 0; j <= c.layers_per_block; ++j) {
            const int64_t skip = j == c.layers_per_block ? below : out;
            resnet(p + ".resnets." + std::to_string(j), (j == 0 ? prev : out) + skip, out);
            if (c.up_block_types[i] == "CrossAttnUpBlock2D")
                transformer(p + ".attentions." + std::to_string(j), out, c.transformer_layers_per_block[level]);
        }
        if (i + 1 < L) conv(p + ".upsamplers.0.conv", out, out, 3);
    }
    norm("conv_norm_out", c0);
    conv("conv_out", c0, c.out_channels, 3);
    return s;
}

// A WeightSource over a key -> shape table that allocates no weights: every tensor it hands out is a view of
// one shared zero buffer (calloc'd, so its untouched pages are never committed), and it records the
// parameters the model takes.
class ShapeOnlySource : public nn::WeightSource {
public:
    explicit ShapeOnlySource(std::map<std::string, Shape> shapes) : shapes_(std::move(shapes)) {
        int64_t largest = 1;
        for (const auto& kv : shapes_) largest = std::max(largest, shape_numel(kv.second));
        const size_t bytes = size_t(largest) * sizeof(float);
        void* p = std::calloc(bytes, 1);
        if (!p) fail(ErrorCode::OUT_OF_MEMORY, "ShapeOnlySource: cannot reserve ", bytes, " bytes");
        zeros_ = std::make_shared<Storage>(p, bytes, Device::CPU, [](void* q) { std::free(q); });
    }
    bool contains(const std::string& key) const override { return shapes_.count(key) != 0; }
    Shape shape(const std::string& key) const override {
        auto it = shapes_.find(key);
        if (it == shapes_.end()) fail(ErrorCode::NOT_FOUND, "no tensor '", key, "'");
        return it->second;
    }
    Tensor load(const std::string& key) const override {
        const Shape s = shape(key);
        loaded_params += shape_numel(s);
        ++loaded_tensors;
        return Tensor::from_storage(zeros_, 0, s, contiguous_strides(s), DType::F32);
    }
    std::vector<std::string> keys() const override {
        std::vector<std::string> k;
        for (const auto& kv : shapes_) k.push_back(kv.first);
        return k;
    }
    std::string describe() const override { return "shape-only weights"; }

    mutable int64_t loaded_params = 0;
    mutable int64_t loaded_tensors = 0;

private:
    std::map<std::string, Shape> shapes_;
    std::shared_ptr<Storage> zeros_;
};

int64_t total_params(const std::map<std::string, Shape>& shapes) {
    int64_t n = 0;
    for (const auto& kv : shapes) n += shape_numel(kv.second);
    return n;
}

}  // namespace

SDXL_TEST(unet_output_shape_for_latents_not_multiple_of_eight) {
    const auto unet = build(sdxl_test::tiny4_unet());
    // 4 levels: sides not divisible by 8 make the up blocks upsample to the skip sizes
    // (10x14 -> 5x7 -> 3x4 -> 2x2 and back 3x4, 5x7, 10x14).
    for (const auto& hw : std::vector<std::pair<int64_t, int64_t>>{{10, 14}, {12, 8}, {9, 7}, {1, 3}, {16, 8}}) {
        const Inputs in = inputs(2, hw.first, hw.second, 11);
        const Tensor out = unet.forward(in.sample, scalar_i64(999), in.context, in.text_embeds, in.time_ids);
        CHECK_MSG(out.shape() == (Shape{2, 4, hw.first, hw.second}),
                  hw.first << "x" << hw.second << ": got " << out.describe());
        CHECK_MSG(all_finite(out), hw.first << "x" << hw.second << ": non-finite output");
    }
}

SDXL_TEST(unet_timestep_forms_are_equivalent) {
    const auto unet = build(sdxl_test::tiny4_unet());
    const Inputs in = inputs(2, 8, 8, 21);
    auto run = [&](const Tensor& t) { return unet.forward(in.sample, t, in.context, in.text_embeds, in.time_ids); };
    const Tensor ref = run(scalar_i64(500));
    CHECK_MSG(max_abs_diff(run(vec_i64({500, 500})), ref) == 0.0, "0-d vs [B] I64");
    CHECK_MSG(max_abs_diff(run(vec_i64({500})), ref) == 0.0, "0-d vs [1] I64");
    CHECK_MSG(max_abs_diff(run(scalar_f32(500.0f)), ref) == 0.0, "I64 vs F32");
    // A different timestep changes the output (the embedding is really used).
    CHECK(max_abs_diff(run(scalar_i64(10)), ref) > 1e-3);

    // Per-sample timesteps: each batch item equals a batch-1 run of that item with its own timestep.
    const Tensor both = run(vec_i64({900, 37}));
    for (int64_t b = 0; b < 2; ++b) {
        const Tensor one = unet.forward(in.sample.narrow(0, b, 1), scalar_i64(b == 0 ? 900 : 37),
                                        in.context.narrow(0, b, 1), in.text_embeds.narrow(0, b, 1),
                                        in.time_ids.narrow(0, b, 1));
        const double d = max_abs_diff(both.narrow(0, b, 1), one);
        CHECK_MSG(d <= 1e-5, "item " << b << " differs from its batch-1 run by " << d);
    }
}

// The cross-attention keys/values kept across steps (nn::CrossAttentionCache): the same outputs as without it,
// bit for bit, over steps with new samples and timesteps; filled once per cross-attention; a new context tensor
// empties and refills it (a stale key/value would give the old context's output).
SDXL_TEST(unet_cross_attention_cache_across_steps) {
    const auto unet = build(sdxl_test::tiny4_unet());
    const Inputs in = inputs(2, 8, 8, 31);
    nn::CrossAttentionCache cache;
    // tiny4: cross-attention transformers at levels 1 and 2 (1 + 2 layers), down (1 resnet each) and up (2 each)
    // paths, and the mid block: 1 + 2 + (2 * 1 + 2 * 2) + 1 = 10 blocks.
    const size_t cross_attentions = 10;
    for (int step = 0; step < 3; ++step) {
        const Tensor sample = rnd({2, 4, 8, 8}, 40 + uint64_t(step));
        const Tensor t = scalar_i64(900 - 300 * step);
        const Tensor plain = unet.forward(sample, t, in.context, in.text_embeds, in.time_ids);
        const Tensor cached = unet.forward(sample, t, in.context, in.text_embeds, in.time_ids, &cache);
        CHECK_MSG(max_abs_diff(cached, plain) == 0.0, "step " << step << ": cached K/V changed the output");
        CHECK_MSG(cache.size() == cross_attentions, "step " << step << ": " << cache.size() << " cache entries");
    }
    const Tensor other = rnd({2, 7, 12}, 99);
    const Tensor plain = unet.forward(in.sample, scalar_i64(10), other, in.text_embeds, in.time_ids);
    const Tensor cached = unet.forward(in.sample, scalar_i64(10), other, in.text_embeds, in.time_ids, &cache);
    CHECK_MSG(max_abs_diff(cached, plain) == 0.0, "a new context must not reuse the old keys/values");
    CHECK(cache.size() == cross_attentions);
}

SDXL_TEST(unet_argument_errors) {
    const auto unet = build(sdxl_test::tiny4_unet());
    const Inputs in = inputs(2, 8, 8, 31);
    const Tensor t = scalar_i64(1);
    // 6 time ids where the config takes 5: 6*4 + 6 != 26.
    const Inputs six = inputs(2, 8, 8, 31, 6);
    expect_error([&] { unet.forward(in.sample, t, in.context, in.text_embeds, six.time_ids); },
                 ErrorCode::INVALID_ARGUMENT, "projection_class_embeddings_input_dim is 26");
    expect_error([&] { unet.forward(in.sample, t, in.context, rnd({2, 7}, 1), in.time_ids); },
                 ErrorCode::INVALID_ARGUMENT, "projection_class_embeddings_input_dim");
    expect_error([&] { unet.forward(rnd({2, 3, 8, 8}, 2), t, in.context, in.text_embeds, in.time_ids); },
                 ErrorCode::INVALID_ARGUMENT, "in_channels 4");
    expect_error([&] { unet.forward(rnd({2, 4, 8}, 2), t, in.context, in.text_embeds, in.time_ids); },
                 ErrorCode::INVALID_ARGUMENT, "sample must be [B, 4, H, W]");
    expect_error([&] { unet.forward(in.sample, t, rnd({2, 7, 13}, 3), in.text_embeds, in.time_ids); },
                 ErrorCode::INVALID_ARGUMENT, "cross_attention_dim 12");
    expect_error([&] { unet.forward(in.sample, t, rnd({1, 7, 12}, 3), in.text_embeds, in.time_ids); },
                 ErrorCode::INVALID_ARGUMENT, "encoder_hidden_states");
    expect_error([&] { unet.forward(in.sample, vec_i64({1, 2, 3}), in.context, in.text_embeds, in.time_ids); },
                 ErrorCode::INVALID_ARGUMENT, "timestep must be 0-d, [1] or [B]");
    expect_error([&] { unet.forward(in.sample, t, in.context, Tensor(), in.time_ids); }, ErrorCode::INVALID_ARGUMENT,
                 "needs text_embeds and time_ids");
    expect_error([&] { unet.forward(in.sample, t, in.context, in.text_embeds, rnd({1, 5}, 4)); },
                 ErrorCode::INVALID_ARGUMENT, "time_ids must be [B, n_ids]");
}

SDXL_TEST(unet_config_errors) {
    auto expect_config_error = [](api::UNetConfig c, ErrorCode code, const std::string& part) {
        expect_error([&] { build(c); }, code, part);
    };
    api::UNetConfig c = sdxl_test::tiny4_unet();
    c.num_attention_heads = {2, 3, 4, 2};  // 16 channels / 3 heads
    expect_config_error(c, ErrorCode::INVALID_ARGUMENT, "not divisible by num_attention_heads 3");
    c = sdxl_test::tiny4_unet();
    c.num_attention_heads = {2, 2, 4, 3};  // the mid block uses the last level's heads even after a DownBlock2D
    expect_config_error(c, ErrorCode::INVALID_ARGUMENT, "mid block");
    c = sdxl_test::tiny4_unet();
    c.transformer_layers_per_block = {1, 1, 1};
    expect_config_error(c, ErrorCode::INVALID_ARGUMENT, "transformer_layers_per_block has 3 entries");
    c = sdxl_test::tiny4_unet();
    c.down_block_types[1] = "SimpleCrossAttnDownBlock2D";
    expect_config_error(c, ErrorCode::UNSUPPORTED, "SimpleCrossAttnDownBlock2D");
    c = sdxl_test::tiny4_unet();
    c.up_block_types.pop_back();
    expect_config_error(c, ErrorCode::INVALID_ARGUMENT, "up block types");
    c = sdxl_test::tiny4_unet();
    c.block_out_channels[2] = 18;  // not a multiple of 4 groups
    expect_config_error(c, ErrorCode::INVALID_ARGUMENT, "norm_num_groups 4");
    c = sdxl_test::tiny4_unet();
    c.addition_embed_type = "text";
    expect_config_error(c, ErrorCode::UNSUPPORTED, "addition_embed_type 'text'");
    c = sdxl_test::tiny4_unet();
    c.mid_block_scale_factor = 2.0f;
    expect_config_error(c, ErrorCode::UNSUPPORTED, "mid_block_scale_factor");

    // A single value stands for every level, as an int in diffusers' config.json does.
    c = sdxl_test::tiny4_unet();
    c.transformer_layers_per_block = {1};
    const auto unet = build(c);
    CHECK(unet.config().transformer_layers_per_block == (std::vector<int64_t>{1, 1, 1, 1}));
}

SDXL_TEST(unet_weight_key_missing_names_the_key) {
    auto shapes = diffusers_state_dict_shapes(sdxl_test::tiny4_unet());
    CHECK(shapes.erase("up_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight") == 1);
    auto source = std::make_shared<ShapeOnlySource>(shapes);
    expect_error([&] { models::UNet2DConditionModel(sdxl_test::tiny4_unet(), nn::WeightBuilder(source)); }, ErrorCode::BAD_MODEL_FILE,
                 "up_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight");
}

// The real configs take exactly diffusers' keys with their shapes, and count the published parameters
// (SDXL base UNet: 2,567,463,684).
SDXL_TEST(unet_sdxl_configs_keys_and_parameter_counts) {
    struct Expect {
        const char* name;
        api::UNetConfig config;
        int64_t tensors, params;
    };
    for (const Expect& e : {Expect{"base", api::UNetConfig::sdxl_base(), 1680, 2567463684LL},
                            Expect{"refiner", api::UNetConfig::sdxl_refiner(), 1220, 2259526660LL}}) {
        const auto shapes = diffusers_state_dict_shapes(e.config);
        CHECK_MSG(int64_t(shapes.size()) == e.tensors, e.name << ": " << shapes.size() << " tensors");
        CHECK_MSG(total_params(shapes) == e.params, e.name << ": " << total_params(shapes) << " parameters");
        auto source = std::make_shared<ShapeOnlySource>(shapes);
        nn::WeightBuilder vb(source);
        const models::UNet2DConditionModel unet(e.config, vb);
        vb.check_all_used();  // throws if the model left a tensor of the state dict untaken
        CHECK_MSG(source->loaded_tensors == e.tensors, e.name << ": model took " << source->loaded_tensors << " tensors");
        CHECK_MSG(source->loaded_params == e.params, e.name << ": model took " << source->loaded_params << " parameters");
    }
}
