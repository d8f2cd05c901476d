// diffusers v0.31 HeunDiscreteScheduler (order 2): timesteps [t0, t1, t1, t2, t2, ...], sigmas
// [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0]. The first evaluation of each pair takes an Euler step and remembers
// (derivative, dt, sample); the second averages the derivatives. As in diffusers, which half runs depends on that
// remembered state, not on the parity of the index (a fresh scheduler started mid-pair runs a first-order step).
#include <cmath>

#include "schedulers/k_sigmas.h"

namespace sdxl::schedulers {
namespace {

class HeunDiscrete : public Scheduler {
public:
    explicit HeunDiscrete(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.beta_start = 0.00085;
        d.beta_end = 0.012;
        d.beta_schedule = "linear";
        d.timestep_spacing = "linspace";
        d.steps_offset = 0;
        resolve_common(d);
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        clip_ = cfg_bool(c.clip_sample, false);
        clip_range_ = cfg(c.clip_sample_range, 1.0);
    }

    int order() const override { return 2; }

    void set_timesteps(int64_t n) override {
        const std::vector<float> ts32 = ksig::spacing_timesteps_f32(common_.timestep_spacing, n,
                                                                    common_.num_train_timesteps,
                                                                    common_.steps_offset, config_.class_name);
        const std::vector<float> train = ksig::train_sigmas(alphas_cumprod_);
        std::vector<double> ts(ts32.begin(), ts32.end());
        std::vector<double> sig = ksig::interp(ts, train);
        if (karras_) {
            const std::vector<float> log_train = ksig::log_f32(train);
            sig = karras_sigmas(sig.back(), sig.front(), n);
            ts.clear();
            for (double s : sig) ts.push_back(ksig::sigma_to_t_np(s, log_train));
        }
        std::vector<float> s32;
        for (double s : sig) s32.push_back(float(s));
        s32.push_back(0.0f);
        // cat([s[:1], s[1:-1].repeat_interleave(2), s[-1:]])
        sig32_.assign(1, s32[0]);
        for (size_t k = 1; k + 1 < s32.size(); ++k) sig32_.insert(sig32_.end(), {s32[k], s32[k]});
        sig32_.push_back(s32.back());
        sigmas_.assign(sig32_.begin(), sig32_.end());
        timesteps_.assign(1, double(float(ts[0])));
        for (size_t k = 1; k < ts.size(); ++k) timesteps_.insert(timesteps_.end(), 2, double(float(ts[k])));
        prev_derivative_ = Tensor();
        prev_sample_ = Tensor();
        dt_ = 0.0f;
    }

    double init_noise_sigma() const override { return ksig::init_noise_sigma(sig32_, common_.timestep_spacing); }

    Tensor scale_model_input(const Tensor& sample, int64_t i) override {
        check_step_index(i);
        return ksig::scale_by_sigma(sample, sig32_[size_t(i)]);
    }

    StepResult step(const Tensor& model_output, int64_t i, const Tensor& sample, const NoiseFn&) override {
        check_step_index(i);
        const bool first = !prev_derivative_.defined();
        if (!first && i < 1) fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": bad step index");
        const float sigma = first ? sig32_[size_t(i)] : sig32_[size_t(i) - 1];
        const float sigma_next = first ? sig32_[size_t(i) + 1] : sig32_[size_t(i)];
        const float sigma_hat = sigma;  // gamma = 0
        const float sigma_input = first ? sigma_hat : sigma_next;
        Tensor x0 = ksig::predict_x0(model_output, sample, sigma_input, common_.prediction_type, true,
                                     config_.class_name);
        const int64_t m = x0.numel();
        if (clip_) {
            const float lo = float(-clip_range_), hi = float(clip_range_);
            float* p = x0.data<float>();
            for (int64_t k = 0; k < m; ++k) p[k] = std::min(std::max(p[k], lo), hi);
        }
        const Tensor x = sample.contiguous();
        const float* px = x.data<float>();
        const float* p0 = x0.data<float>();
        Tensor prev = ksig::new_like(x);
        float* po = prev.data<float>();
        if (first) {
            Tensor deriv = ksig::new_like(x);
            float* pd = deriv.data<float>();
            const float dt = sigma_next - sigma_hat;
            for (int64_t k = 0; k < m; ++k) {
                pd[k] = (px[k] - p0[k]) / sigma_hat;
                po[k] = px[k] + pd[k] * dt;
            }
            prev_derivative_ = deriv;
            dt_ = dt;
            prev_sample_ = x.clone();
        } else {
            const float* pd = prev_derivative_.data<float>();
            const float* ps = prev_sample_.data<float>();
            for (int64_t k = 0; k < m; ++k) {
                const float d2 = (px[k] - p0[k]) / sigma_next;
                const float d = (pd[k] + d2) / 2.0f;
                po[k] = ps[k] + d * dt_;
            }
            prev_derivative_ = Tensor();
            prev_sample_ = Tensor();
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return ksig::add_noise_sigma(original, noise, sig32_[size_t(i)], config_.class_name);
    }

private:
    bool karras_ = false, clip_ = false;
    double clip_range_ = 1.0;
    std::vector<float> sig32_;
    Tensor prev_derivative_, prev_sample_;
    float dt_ = 0.0f;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("HeunDiscreteScheduler", HeunDiscrete);

}  // namespace sdxl::schedulers
