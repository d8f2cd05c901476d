// The Scheduler handle of sdxl.h over schedulers/, plus diffusers' denoising_end / denoising_start split.
#include <cmath>
#include <memory>

#include "api/handles.h"
#include "core/error.h"
#include "schedulers/scheduler.h"

namespace sdxl::api {

namespace {
using Ptr = std::shared_ptr<schedulers::Scheduler>;

schedulers::Scheduler& get(void* p) {
    Ptr& s = *static_cast<Ptr*>(p);
    if (!s) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "scheduler handle is empty");
    return *s;
}

// diffusers: int(round(num_train_timesteps - fraction * num_train_timesteps)); Python rounds half to even,
// as nearbyint does in the default rounding mode.
double cutoff(const schedulers::Scheduler& s, double fraction, const char* what) {
    if (!(fraction > 0.0 && fraction < 1.0))
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, what, " must be in (0, 1), got ", fraction);
    if (s.timesteps().empty())
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, "call set_timesteps before splitting at ", what);
    double n = double(s.config().num_train_timesteps > 0 ? s.config().num_train_timesteps : 1000);
    return std::nearbyint(n - fraction * n);
}
}  // namespace

Scheduler::Scheduler() : impl_(new Ptr()) {}
Scheduler::Scheduler(const Scheduler& other) : impl_(new Ptr(*static_cast<Ptr*>(other.impl_))) {}
Scheduler::~Scheduler() { delete static_cast<Ptr*>(impl_); }
Scheduler& Scheduler::operator=(const Scheduler& other) {
    *static_cast<Ptr*>(impl_) = *static_cast<Ptr*>(other.impl_);
    return *this;
}

Scheduler Scheduler::create(const SchedulerConfig& config) {
    Scheduler s;
    *static_cast<Ptr*>(s.impl_) = schedulers::create(config);
    return s;
}

std::vector<std::string> Scheduler::supported_classes() { return schedulers::registered_names(); }

void Scheduler::set_timesteps(int64_t n) {
    if (n < 1 || n > 10000) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "num_inference_steps must be in [1, 10000], got ", n);
    get(impl_).set_timesteps(n);
}

std::vector<double> Scheduler::timesteps() const { return get(impl_).timesteps(); }
std::vector<double> Scheduler::sigmas() const { return get(impl_).sigmas(); }
double Scheduler::init_noise_sigma() const { return get(impl_).init_noise_sigma(); }
int Scheduler::order() const { return get(impl_).order(); }

Tensor Scheduler::scale_model_input(const Tensor& sample, int64_t step_index) {
    return wrap(get(impl_).scale_model_input(core(sample), step_index));
}

TensorList Scheduler::step(const Tensor& model_output, int64_t step_index, const Tensor& sample, Generator* generator) {
    schedulers::NoiseFn noise;
    if (generator) noise = [generator](const sdxl::Shape& shape) { return core(generator->randn(shape)); };
    schedulers::StepResult r = get(impl_).step(core(model_output), step_index, core(sample), noise);
    TensorList out;
    out.add(wrap(r.prev_sample));
    out.add(wrap(r.pred_original_sample));
    return out;
}

Tensor Scheduler::add_noise(const Tensor& original, const Tensor& noise, int64_t step_index) const {
    return wrap(get(impl_).add_noise(core(original), core(noise), step_index));
}

int64_t Scheduler::steps_before_denoising_end(double denoising_end) const {
    const schedulers::Scheduler& s = get(impl_);
    double c = cutoff(s, denoising_end, "denoising_end");
    int64_t n = 0;
    for (double t : s.timesteps()) n += t >= c ? 1 : 0;  // len(filter(ts >= cutoff))
    return n;
}

int64_t Scheduler::begin_index_for_denoising_start(double denoising_start) const {
    const schedulers::Scheduler& s = get(impl_);
    double c = cutoff(s, denoising_start, "denoising_start");
    int64_t n = 0;
    for (double t : s.timesteps()) n += t < c ? 1 : 0;  // (timesteps < cutoff).sum()
    // A 2nd-order scheduler may have stopped between the two evaluations of a step: start that step again.
    if (s.order() == 2 && n % 2 == 0) n += 1;
    return int64_t(s.timesteps().size()) - n;
}

}  // namespace sdxl::api

namespace sdxl::api {

std::shared_ptr<schedulers::Scheduler> HandleAccess::scheduler(const Scheduler& handle) {
    Ptr& s = *static_cast<Ptr*>(handle.impl_);
    if (!s) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "scheduler handle is empty");
    return s;
}

}  // namespace sdxl::api
