// The Denoiser handle of sdxl.h over pipeline/denoise_loop.h.
#include <memory>

#include "api/handles.h"
#include "core/error.h"
#include "pipeline/denoise_loop.h"

namespace sdxl::api {

namespace {
using Ptr = std::shared_ptr<pipeline::DenoiseLoop>;

pipeline::DenoiseLoop& get(void* p) {
    Ptr& d = *static_cast<Ptr*>(p);
    if (!d) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "denoiser handle is empty");
    return *d;
}
}  // namespace

Denoiser::Denoiser() : impl_(new Ptr()) {}
Denoiser::Denoiser(const Denoiser& other) : impl_(new Ptr(*static_cast<Ptr*>(other.impl_))) {}
Denoiser::~Denoiser() { delete static_cast<Ptr*>(impl_); }
Denoiser& Denoiser::operator=(const Denoiser& other) {
    *static_cast<Ptr*>(impl_) = *static_cast<Ptr*>(other.impl_);
    return *this;
}

Denoiser Denoiser::create(const UNetModel& unet, const Scheduler& scheduler, const Tensor& latents,
                          const Tensor& prompt_embeds, const Tensor& text_embeds, const Tensor& time_ids,
                          int64_t begin_index, int64_t end_index, double guidance_scale, double guidance_rescale,
                          Generator* generator) {
    schedulers::NoiseFn noise;
    if (generator) {
        // A copy of the handle shares the generator's stream, so draws continue where the caller's stopped.
        noise = [g = Generator(*generator)](const sdxl::Shape& shape) mutable { return core(g.randn(shape)); };
    }
    pipeline::Conditioning cond{core(prompt_embeds), core(text_embeds), core(time_ids)};
    Denoiser d;
    *static_cast<Ptr*>(d.impl_) = std::make_shared<pipeline::DenoiseLoop>(
        HandleAccess::unet(unet), HandleAccess::scheduler(scheduler), core(latents), cond, begin_index, end_index,
        guidance_scale, guidance_rescale, noise);
    return d;
}

bool Denoiser::done() const { return get(impl_).done(); }
bool Denoiser::guided() const { return get(impl_).guided(); }
int64_t Denoiser::next_index() const { return get(impl_).next_index(); }
int64_t Denoiser::begin_index() const { return get(impl_).begin_index(); }
int64_t Denoiser::end_index() const { return get(impl_).end_index(); }
double Denoiser::timestep(int64_t index) const {
    pipeline::DenoiseLoop& d = get(impl_);
    if (index < d.begin_index() || index >= d.end_index())
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, "denoiser: step index ", index, " outside [", d.begin_index(), ", ",
             d.end_index(), ")");
    return d.timestep(index);
}
void Denoiser::step() { get(impl_).step(); }
void Denoiser::run() {
    pipeline::DenoiseLoop& d = get(impl_);
    while (!d.done()) d.step();
}
Tensor Denoiser::latents() const { return wrap(get(impl_).latents()); }
void Denoiser::cancel() { get(impl_).cancel(); }
bool Denoiser::cancelled() const { return get(impl_).cancelled(); }

Tensor classifier_free_guidance(const Tensor& uncond, const Tensor& text, double scale, double rescale) {
    return wrap(pipeline::classifier_free_guidance(core(uncond), core(text), scale, rescale));
}

}  // namespace sdxl::api
