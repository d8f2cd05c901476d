#include "pipeline/denoise_loop.h"

#include <cmath>

#include "core/error.h"
#include "ops/ops.h"

namespace sdxl::pipeline {

namespace {

// torch.std over all but the first dimension (unbiased), accumulated in double as torch's CPU kernel does.
double sample_std(const float* x, int64_t n) {
    double mean = 0.0, m2 = 0.0;
    for (int64_t i = 0; i < n; ++i) {  // Welford
        double d = double(x[i]) - mean;
        mean += d / double(i + 1);
        m2 += d * (double(x[i]) - mean);
    }
    return n > 1 ? std::sqrt(m2 / double(n - 1)) : NAN;
}

}  // namespace

Tensor classifier_free_guidance(const Tensor& uncond, const Tensor& text, double scale, double rescale) {
    SDXL_CHECK(uncond.shape() == text.shape(), "classifier_free_guidance: uncond ", shape_str(uncond.shape()),
                   " and text ", shape_str(text.shape()), " differ");
    // float32 tensor ops with the Python float scale rounded to float32, as torch does.
    Tensor guided = ops::add(uncond, ops::scale(ops::sub(text, uncond), float(scale), 0.0f));  // [B, ...]
    if (!(rescale > 0.0)) return guided;

    Tensor t = text.to(Device::CPU).contiguous();
    Tensor g = guided.to(Device::CPU).contiguous();
    Tensor out = Tensor::empty(g.shape(), DType::F32);
    const int64_t batch = g.size(0), per = g.numel() / batch;
    const float keep = float(1.0 - rescale), take = float(rescale);
    for (int64_t b = 0; b < batch; ++b) {
        const float* tb = t.data<float>() + b * per;
        const float* gb = g.data<float>() + b * per;
        float* ob = out.data<float>() + b * per;
        const float ratio = float(sample_std(tb, per)) / float(sample_std(gb, per));  // std_text / std_cfg
        for (int64_t i = 0; i < per; ++i) {
            const float rescaled = gb[i] * ratio;
            const float a = take * rescaled;
            const float c = keep * gb[i];
            ob[i] = a + c;
        }
    }
    return out.to(uncond.device());
}

DenoiseLoop::DenoiseLoop(std::shared_ptr<const models::UNet2DConditionModel> unet,
                         std::shared_ptr<schedulers::Scheduler> scheduler, Tensor latents, Conditioning conditioning,
                         int64_t begin, int64_t end, double guidance_scale, double guidance_rescale,
                         schedulers::NoiseFn noise)
    : unet_(std::move(unet)), scheduler_(std::move(scheduler)), latents_(std::move(latents)),
      cond_(std::move(conditioning)), begin_(begin), end_(end), next_(begin), guidance_scale_(guidance_scale),
      guidance_rescale_(guidance_rescale), guided_(false), noise_(std::move(noise)) {
    SDXL_CHECK(unet_ && scheduler_, "denoise: the UNet or scheduler handle is empty");
    SDXL_CHECK(latents_.defined() && latents_.dim() == 4 && latents_.dtype() == DType::F32,
                   "denoise: latents must be F32 [B, C, h, w], got ",
                   latents_.defined() ? latents_.describe() : std::string("undefined"));
    const int64_t n = int64_t(scheduler_->timesteps().size());
    SDXL_CHECK(n > 0, "denoise: call set_timesteps on the scheduler first");
    SDXL_CHECK(0 <= begin_ && begin_ <= end_ && end_ <= n, "denoise: step range [", begin_, ", ", end_,
                   ") is not within the scheduler's ", n, " timesteps");
    SDXL_CHECK(cond_.prompt_embeds.defined() && cond_.prompt_embeds.dim() == 3,
                   "denoise: prompt_embeds must be [batch, tokens, features]");
    SDXL_CHECK(cond_.text_embeds.defined() && cond_.text_embeds.dim() == 2,
                   "denoise: text_embeds (pooled prompt embeddings) must be [batch, features]");
    SDXL_CHECK(cond_.time_ids.defined() && cond_.time_ids.dim() == 2, "denoise: time_ids must be [batch, ids]");
    const int64_t b = latents_.size(0), bc = cond_.prompt_embeds.size(0);
    SDXL_CHECK(bc == b || bc == 2 * b, "denoise: conditioning batch ", bc, " must be the latents' batch ", b,
                   " (no guidance) or twice it (negative and positive halves for guidance)");
    SDXL_CHECK(cond_.text_embeds.size(0) == bc && cond_.time_ids.size(0) == bc, "denoise: text_embeds batch ",
                   cond_.text_embeds.size(0), " and time_ids batch ", cond_.time_ids.size(0),
                   " must equal prompt_embeds' batch ", bc);
    guided_ = bc == 2 * b;
    // The conditioning goes to the UNet's device and dtype once; the latents and the scheduler stay where the
    // caller put them (the schedulers' arithmetic runs on F32 host tensors).
    const nn::Placement& p = unet_->placement();
    auto place = [&p](const Tensor& t) { return t.to(p.dtype).to(p.device); };
    cond_.prompt_embeds = place(cond_.prompt_embeds);
    cond_.text_embeds = place(cond_.text_embeds);
    cond_.time_ids = cond_.time_ids.to(p.device);
    SDXL_CHECK(std::isfinite(guidance_scale_) && std::isfinite(guidance_rescale_) && guidance_rescale_ >= 0.0 &&
                       guidance_rescale_ <= 1.0,
                   "denoise: guidance_scale must be finite and guidance_rescale in [0, 1], got ", guidance_scale_,
                   " and ", guidance_rescale_);
}

void DenoiseLoop::step() {
    if (cancelled_.load()) fail(ErrorCode::CANCELLED, "denoise: cancelled before step ", next_);
    SDXL_CHECK(!done(), "denoise: all steps [", begin_, ", ", end_, ") have run");
    const int64_t i = next_;
    const int64_t b = latents_.size(0);

    Tensor x_in = scheduler_->scale_model_input(latents_, i);  // [B, C, h, w]
    if (guided_) x_in = ops::concat({x_in, x_in}, 0);          // [2B, C, h, w]
    Tensor t = Tensor::empty({}, DType::F32);
    t.data<float>()[0] = float(scheduler_->timesteps()[size_t(i)]);  // timesteps are float32 values
    const nn::Placement& p = unet_->placement();
    x_in = x_in.to(p.dtype).to(p.device);
    Tensor eps = unet_->forward(x_in, t.to(p.device), cond_.prompt_embeds, cond_.text_embeds, cond_.time_ids,
                                &cross_cache_);  // [Bc, C, h, w] on the UNet's device; K/V of the text kept
    eps = eps.to(latents_.device()).to(latents_.dtype());              // back to the latents' (F32 host)
    if (guided_) {
        eps = classifier_free_guidance(ops::slice(eps, 0, 0, b), ops::slice(eps, 0, b, b), guidance_scale_,
                                       guidance_rescale_);  // [B, C, h, w]
    }
    latents_ = scheduler_->step(eps, i, latents_, noise_).prev_sample;
    next_ = i + 1;
}

}  // namespace sdxl::pipeline
