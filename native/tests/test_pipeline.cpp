// The denoising loop of pipeline/: classifier-free guidance (and guidance_rescale) against a plain double
// computation, the loop against a hand-written loop over the same UNet and scheduler, and argument errors and
// cancellation. The numbers against diffusers come from the pipeline reference cases in the Java tests.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "test_tensors.h"
#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"
#include "models/unet2d_condition.h"
#include "nn/weights.h"
#include "ops/ops.h"
#include "pipeline/denoise_loop.h"
#include "schedulers/scheduler.h"

using namespace sdxl;

namespace {

using sdxl_test::expect_error;
using sdxl_test::rnd;

// A base-shaped 3-level UNet, small: channels (8, 16, 16), context 12, 6 time ids of 4 features + 6 pooled.
api::UNetConfig tiny_base() {
    api::UNetConfig c;
    c.in_channels = 4;
    c.out_channels = 4;
    c.block_out_channels = {8, 16, 16};
    c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
    c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
    c.mid_block_type = "UNetMidBlock2DCrossAttn";
    c.layers_per_block = 1;
    c.transformer_layers_per_block = {1, 1, 1};
    c.num_attention_heads = {2, 2, 2};
    c.cross_attention_dim = 12;
    c.norm_num_groups = 4;
    c.norm_eps = 1e-5f;
    c.use_linear_projection = true;
    c.flip_sin_to_cos = true;
    c.freq_shift = 0;
    c.addition_embed_type = "text_time";
    c.addition_time_embed_dim = 4;
    c.projection_class_embeddings_input_dim = 6 * 4 + 6;
    return c;
}

std::shared_ptr<schedulers::Scheduler> euler(int64_t steps, const std::string& cls = "EulerDiscreteScheduler") {
    api::SchedulerConfig cfg;
    cfg.class_name = cls;
    cfg.beta_schedule = "scaled_linear";
    cfg.beta_start = 0.00085;
    cfg.beta_end = 0.012;
    cfg.timestep_spacing = "leading";
    cfg.steps_offset = 1;
    std::shared_ptr<schedulers::Scheduler> s = schedulers::create(cfg);
    s->set_timesteps(steps);
    return s;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    const Tensor x = a.contiguous(), y = b.contiguous();
    if (x.shape() != y.shape()) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < x.numel(); ++i)
        m = std::fmax(m, std::fabs(double(x.data<float>()[i]) - double(y.data<float>()[i])));
    for (int64_t i = 0; i < x.numel(); ++i)
        if (std::isnan(x.data<float>()[i]) != std::isnan(y.data<float>()[i])) return INFINITY;
    return m;
}

}  // namespace

SDXL_TEST(guidance_is_uncond_plus_scaled_difference_in_float32) {
    const Tensor u = rnd({2, 4, 3, 5}, 1), t = rnd({2, 4, 3, 5}, 2);
    const Tensor g = pipeline::classifier_free_guidance(u, t, 7.5, 0.0);
    double worst = 0;
    for (int64_t i = 0; i < u.numel(); ++i) {
        const float uf = u.data<float>()[i], tf = t.data<float>()[i];
        const float diff = tf - uf;
        const float scaled = 7.5f * diff;
        const float expect = uf + scaled;  // torch's three float32 ops in this order
        worst = std::fmax(worst, std::fabs(double(expect) - double(g.data<float>()[i])));
    }
    CHECK_MSG(worst == 0.0, "float32 guidance differs by " << worst);
}

SDXL_TEST(guidance_rescale_matches_a_double_precision_formula) {
    // rescale_noise_cfg: cfg * (std(text) / std(cfg)) * r + cfg * (1 - r), std unbiased per sample.
    const Tensor u = rnd({3, 4, 4, 6}, 11, -2.0f, 2.0f), t = rnd({3, 4, 4, 6}, 12, -0.5f, 0.5f);
    const double scale = 5.0, r = 0.7;
    const Tensor got = pipeline::classifier_free_guidance(u, t, scale, r);
    const int64_t per = u.numel() / 3;
    double worst_rel = 0;
    for (int64_t b = 0; b < 3; ++b) {
        std::vector<double> cfg(static_cast<size_t>(per)), txt(static_cast<size_t>(per));
        for (int64_t i = 0; i < per; ++i) {
            const double uu = u.data<float>()[b * per + i], tt = t.data<float>()[b * per + i];
            cfg[size_t(i)] = uu + scale * (tt - uu);
            txt[size_t(i)] = tt;
        }
        auto stdev = [per](const std::vector<double>& v) {
            double mean = 0, ss = 0;
            for (double x : v) mean += x;
            mean /= double(per);
            for (double x : v) ss += (x - mean) * (x - mean);
            return std::sqrt(ss / double(per - 1));
        };
        const double ratio = stdev(txt) / stdev(cfg);
        CHECK(ratio < 0.5);  // the test data make guidance really widen the distribution
        for (int64_t i = 0; i < per; ++i) {
            const double expect = r * cfg[size_t(i)] * ratio + (1 - r) * cfg[size_t(i)];
            const double diff = std::fabs(expect - double(got.data<float>()[b * per + i]));
            worst_rel = std::fmax(worst_rel, diff / std::fmax(1.0, std::fabs(expect)));
        }
    }
    CHECK_MSG(worst_rel < 2e-6, "rescaled guidance off by " << worst_rel << " (relative), float32 expected ~1e-7");
}

SDXL_TEST(denoise_loop_equals_a_hand_written_loop) {
    auto unet = std::make_shared<models::UNet2DConditionModel>(tiny_base(),
                                                               nn::WeightBuilder(nn::random_source(3, 1.0f)));
    const int64_t B = 2;
    const Tensor x0 = rnd({B, 4, 8, 8}, 21);
    pipeline::Conditioning cond{rnd({2 * B, 7, 12}, 22), rnd({2 * B, 6}, 23), rnd({2 * B, 6}, 24, 0.0f, 1024.0f)};

    for (const char* cls : {"EulerDiscreteScheduler", "HeunDiscreteScheduler", "EulerAncestralDiscreteScheduler"}) {
        auto sched = euler(4, cls);
        const int64_t n = int64_t(sched->timesteps().size());
        Tensor init = ops::scale(x0, float(sched->init_noise_sigma()), 0.0f);
        // The loop over a window [begin, n - 1) as the base/refiner split makes; Heun's repeated sigmas make
        // a first-order step at an odd index a no-op (dt 0), so its window starts at a step's first half.
        const int64_t begin = sched->order() == 2 ? 2 : 1;
        Generator g1(5);
        pipeline::DenoiseLoop loop(unet, sched, init, cond, begin, n - 1, 6.0, 0.0,
                                   [&g1](const Shape& s) { return g1.randn(s); });
        int64_t steps = 0;
        while (!loop.done()) {
            loop.step();
            ++steps;
        }
        CHECK(steps == n - 1 - begin);

        // By hand: the two halves evaluated separately, then combined; and once with the halves swapped, to
        // show the comparison would catch a mix-up of negative and positive.
        auto by_hand = [&](bool swap) {
            auto s2 = euler(4, cls);
            Generator g2(5);
            Tensor x = init;
            for (int64_t i = begin; i < n - 1; ++i) {
                Tensor in = s2->scale_model_input(x, i);
                Tensor t = Tensor::empty({}, DType::F32);
                t.data<float>()[0] = float(s2->timesteps()[size_t(i)]);
                auto half = [&](int64_t start) {
                    return unet->forward(in, t, ops::slice(cond.prompt_embeds, 0, start, B),
                                         ops::slice(cond.text_embeds, 0, start, B),
                                         ops::slice(cond.time_ids, 0, start, B));
                };
                Tensor uncond = half(swap ? B : 0), text = half(swap ? 0 : B);
                Tensor eps = ops::add(uncond, ops::scale(ops::sub(text, uncond), 6.0f, 0.0f));
                x = s2->step(eps, i, x, [&g2](const Shape& s) { return g2.randn(s); }).prev_sample;
            }
            return x;
        };
        const Tensor x = by_hand(false);
        double scale = 0;
        for (int64_t i = 0; i < x.numel(); ++i) scale = std::fmax(scale, std::fabs(double(x.data<float>()[i])));
        // Batched and separate UNet calls sum in different orders (float32 rounding, ~1e-7 relative per call),
        // and guidance 6 amplifies the difference of the halves about 13x.
        const double d = max_abs_diff(loop.latents(), x);
        CHECK_MSG(d < 1e-5 * scale && scale > 0, cls << ": loop vs hand loop differ by " << d << " at scale " << scale);
        const double swapped = max_abs_diff(loop.latents(), by_hand(true));
        CHECK_MSG(swapped > 1e-2 * scale, cls << ": swapping the halves changed only " << swapped);
    }
}

SDXL_TEST(denoise_loop_without_guidance_and_errors) {
    auto unet = std::make_shared<models::UNet2DConditionModel>(tiny_base(),
                                                               nn::WeightBuilder(nn::random_source(3, 1.0f)));
    auto sched = euler(3);
    const Tensor x = rnd({1, 4, 8, 8}, 31);
    pipeline::Conditioning one{rnd({1, 7, 12}, 32), rnd({1, 6}, 33), rnd({1, 6}, 34, 0.0f, 1024.0f)};
    pipeline::DenoiseLoop plain(unet, sched, x, one, 0, 3, 1.0, 0.0, nullptr);
    CHECK(!plain.guided());
    plain.step();
    CHECK(plain.next_index() == 1);

    pipeline::Conditioning three{rnd({3, 7, 12}, 32), rnd({3, 6}, 33), rnd({3, 6}, 34)};
    expect_error([&] { pipeline::DenoiseLoop(unet, sched, x, three, 0, 3, 5.0, 0.0, nullptr); },
                 ErrorCode::INVALID_ARGUMENT, "twice");
    expect_error([&] { pipeline::DenoiseLoop(unet, sched, x, one, 2, 4, 5.0, 0.0, nullptr); },
                 ErrorCode::INVALID_ARGUMENT, "not within");
    expect_error([&] { pipeline::DenoiseLoop(unet, sched, x, one, 0, 3, 5.0, 1.5, nullptr); },
                 ErrorCode::INVALID_ARGUMENT, "guidance_rescale");
    pipeline::Conditioning bad_pooled{rnd({1, 7, 12}, 32), rnd({2, 6}, 33), rnd({1, 6}, 34)};
    expect_error([&] { pipeline::DenoiseLoop(unet, sched, x, bad_pooled, 0, 3, 5.0, 0.0, nullptr); },
                 ErrorCode::INVALID_ARGUMENT, "text_embeds batch");

    pipeline::DenoiseLoop loop(unet, sched, x, one, 0, 1, 1.0, 0.0, nullptr);
    loop.cancel();
    expect_error([&] { loop.step(); }, ErrorCode::CANCELLED, "cancelled");
    pipeline::DenoiseLoop once(unet, sched, x, one, 0, 1, 1.0, 0.0, nullptr);
    once.step();
    CHECK(once.done());
    expect_error([&] { once.step(); }, ErrorCode::INVALID_ARGUMENT, "have run");
    // stochastic scheduler without a generator
    auto ancestral = euler(3, "EulerAncestralDiscreteScheduler");
    pipeline::DenoiseLoop no_gen(unet, ancestral, x, one, 0, 3, 1.0, 0.0, nullptr);
    expect_error([&] { no_gen.step(); }, ErrorCode::INVALID_ARGUMENT, "generator");
}
