// diffusers v0.31 EulerAncestralDiscreteScheduler: an Euler step to sigma_down plus fresh noise * sigma_up
// (noise = torch.randn(shape, generator) every step).
#include <cmath>

#include "schedulers/k_sigmas.h"

namespace sdxl::schedulers {
namespace {

class EulerAncestralDiscrete : public Scheduler {
public:
    explicit EulerAncestralDiscrete(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.beta_start = 0.0001;
        d.beta_end = 0.02;
        d.beta_schedule = "linear";
        d.timestep_spacing = "linspace";
        d.steps_offset = 0;
        resolve_common(d);
        if (common_.prediction_type == "sample")
            fail(ErrorCode::UNSUPPORTED, c.class_name, ": prediction_type \"sample\" is not implemented");
    }

    void set_timesteps(int64_t n) override {
        const std::vector<float> ts32 = ksig::spacing_timesteps_f32(common_.timestep_spacing, n,
                                                                    common_.num_train_timesteps,
                                                                    common_.steps_offset, config_.class_name);
        std::vector<double> ts(ts32.begin(), ts32.end());
        const std::vector<double> sig = ksig::interp(ts, ksig::train_sigmas(alphas_cumprod_));
        sig32_.clear();
        for (double s : sig) sig32_.push_back(float(s));
        sig32_.push_back(0.0f);
        sigmas_.assign(sig32_.begin(), sig32_.end());
        timesteps_ = ts;
    }

    double init_noise_sigma() const override { return ksig::init_noise_sigma(sig32_, common_.timestep_spacing); }

    Tensor scale_model_input(const Tensor& sample, int64_t i) override {
        check_step_index(i);
        return ksig::scale_by_sigma(sample, sig32_[size_t(i)]);
    }

    StepResult step(const Tensor& model_output, int64_t i, const Tensor& sample, const NoiseFn& noise) override {
        check_step_index(i);
        if (!noise) fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": step needs a noise generator");
        const float sigma = sig32_[size_t(i)];
        Tensor x0 = ksig::predict_x0(model_output, sample, sigma, common_.prediction_type, false, config_.class_name);
        const float sf = sigma, st = sig32_[size_t(i) + 1];
        const float st2 = st * st, sf2 = sf * sf;
        const float sigma_up = std::sqrt(st2 * (sf2 - st2) / sf2);
        const float sigma_down = std::sqrt(st2 - sigma_up * sigma_up);
        const float dt = sigma_down - sigma;
        const Tensor x = sample.contiguous();
        const Tensor z = noise(x.shape()).contiguous();
        ksig::check_pair(x, z, config_.class_name + ".step noise");
        Tensor prev = ksig::new_like(x);
        const float* px = x.data<float>();
        const float* p0 = x0.data<float>();
        const float* pz = z.data<float>();
        float* po = prev.data<float>();
        for (int64_t k = 0, m = x.numel(); k < m; ++k) {
            const float derivative = (px[k] - p0[k]) / sigma;
            const float p = px[k] + derivative * dt;
            po[k] = p + pz[k] * sigma_up;
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return ksig::add_noise_sigma(original, noise, sig32_[size_t(i)], config_.class_name);
    }

private:
    std::vector<float> sig32_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("EulerAncestralDiscreteScheduler", EulerAncestralDiscrete);

}  // namespace sdxl::schedulers
