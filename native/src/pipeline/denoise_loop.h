// diffusers' denoising loop of StableDiffusionXLPipeline / StableDiffusionXLImg2ImgPipeline, one step at a
// time so the caller can report progress and cancel between steps:
//
//   for i in [begin, end):
//       x_in = scheduler.scale_model_input(latents, i)               // [B, C, h, w]
//       x_in = cat([x_in, x_in]) when classifier-free guidance        // [2B, C, h, w]
//       eps  = unet(x_in, timesteps[i], prompt_embeds, text_embeds, time_ids)
//       eps  = uncond + g * (text - uncond), then guidance_rescale    // [B, C, h, w]
//       latents = scheduler.step(eps, i, latents, generator).prev_sample
//
// Everything the text encoders and the Java side prepare (prompt embeddings, pooled embeddings, time ids,
// already concatenated [negative..., positive...] when guiding) comes in as tensors; nothing here knows text.
#pragma once

#include <atomic>
#include <memory>

#include "core/tensor.h"
#include "models/unet2d_condition.h"
#include "schedulers/scheduler.h"

namespace sdxl::pipeline {

// The UNet's conditioning for every step. Batch Bc = B (no guidance) or 2B ([negative..., positive...]).
struct Conditioning {
    Tensor prompt_embeds;  // [Bc, L, cross_attention_dim]
    Tensor text_embeds;    // [Bc, P]  pooled text_encoder_2 output
    Tensor time_ids;       // [Bc, 6 | 5]  micro-conditioning (base) or aesthetic score (refiner)
};

// noise_cfg = uncond + scale * (text - uncond); with rescale > 0 also diffusers' rescale_noise_cfg
// (Lin et al. 2023, sec. 3.4): the result's per-sample std is pulled toward that of `text` by `rescale`.
// uncond, text: [B, ...] on one device, F32.
Tensor classifier_free_guidance(const Tensor& uncond, const Tensor& text, double scale, double rescale);

class DenoiseLoop {
public:
    // Runs timesteps()[begin, end) of a scheduler on which set_timesteps was called. latents [B, C, h, w]
    // are the initial latents (noise * init_noise_sigma, or the img2img latents after add_noise). Guidance
    // is on when the conditioning batch is 2B. noise is the generator for stochastic schedulers.
    DenoiseLoop(std::shared_ptr<const models::UNet2DConditionModel> unet,
                std::shared_ptr<schedulers::Scheduler> scheduler, Tensor latents, Conditioning conditioning,
                int64_t begin, int64_t end, double guidance_scale, double guidance_rescale,
                schedulers::NoiseFn noise);

    bool done() const { return next_ >= end_; }
    int64_t next_index() const { return next_; }
    int64_t begin_index() const { return begin_; }
    int64_t end_index() const { return end_; }
    bool guided() const { return guided_; }
    const Tensor& latents() const { return latents_; }
    double timestep(int64_t index) const { return scheduler_->timesteps()[size_t(index)]; }

    // One scheduler step (one UNet evaluation of the guidance batch). Throws CANCELLED after cancel(),
    // INVALID_ARGUMENT when done().
    void step();
    // Thread-safe: the next step() throws CANCELLED; a step already running finishes first.
    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }

private:
    std::shared_ptr<const models::UNet2DConditionModel> unet_;
    std::shared_ptr<schedulers::Scheduler> scheduler_;
    Tensor latents_;
    Conditioning cond_;
    int64_t begin_, end_, next_;
    double guidance_scale_, guidance_rescale_;
    bool guided_;
    schedulers::NoiseFn noise_;
    std::atomic<bool> cancelled_{false};
    nn::CrossAttentionCache cross_cache_;  // the text context's keys/values, projected at the first step
};

}  // namespace sdxl::pipeline
