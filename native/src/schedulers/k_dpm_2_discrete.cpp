// diffusers v0.31 KDPM2DiscreteScheduler (DPM-Solver-2, order 2). Timesteps [t0, ti1, t1, ti2, t2, ...] where
// ti_k is the timestep of the log-midpoint sigma between s_{k-1} and s_k; the first evaluation of a pair steps
// to the interpolated sigma, the second (model at sigma_interpol) takes the whole step from the stored sample.
#include <cmath>

#include "schedulers/k_dpm_2_common.h"

namespace sdxl::schedulers {
namespace {

using kdpm2::expf32;
using kdpm2::interleave;
using kdpm2::lerp_half;
using kdpm2::logf32;

class KDPM2Discrete : public kdpm2::Base {
public:
    using Base::Base;

    void set_timesteps(int64_t n) override {
        const Schedule sched = base_schedule(n);
        const std::vector<double>& ts = sched.ts;
        const std::vector<float>& s = sched.s;
        const std::vector<float>& log_train = sched.log_train;
        // sigmas_interpol = exp(lerp(log s, log roll(s, 1), 0.5))
        std::vector<float> si(s.size());
        for (size_t k = 0; k < s.size(); ++k) {
            const float prev = s[(k + s.size() - 1) % s.size()];
            si[k] = expf32(lerp_half(logf32(s[k]), logf32(prev)));
        }
        sig32_ = interleave(s);
        interp32_ = interleave(si);
        sigmas_.assign(sig32_.begin(), sig32_.end());
        // timesteps: [t0] + stack(ti[1:-1], t[1:]).flatten()
        timesteps_.assign(1, double(float(ts[0])));
        for (size_t k = 1; k < ts.size(); ++k) {
            timesteps_.push_back(double(ksig::sigma_to_t_torch(si[k], log_train)));
            timesteps_.push_back(double(float(ts[k])));
        }
        stored_ = Tensor();
    }

    double init_noise_sigma() const override { return ksig::init_noise_sigma(sig32_, common_.timestep_spacing); }

    Tensor scale_model_input(const Tensor& sample, int64_t i) override {
        check_step_index(i);
        const float sigma = !stored_.defined() ? sig32_[size_t(i)] : interp32_[size_t(i)];
        return ksig::scale_by_sigma(sample, sigma);
    }

    StepResult step(const Tensor& model_output, int64_t i, const Tensor& sample, const NoiseFn&) override {
        check_step_index(i);
        const bool first = !stored_.defined();
        if (!first && i < 1) fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": bad step index");
        const size_t u = size_t(i);
        const float sigma = first ? sig32_[u] : sig32_[u - 1];
        const float sigma_interpol = first ? interp32_[u + 1] : interp32_[u];
        const float sigma_next = first ? sig32_[u + 1] : sig32_[u];
        const float sigma_hat = sigma;  // gamma = 0
        const float sigma_input = first ? sigma_hat : sigma_interpol;
        Tensor x0 = ksig::predict_x0(model_output, sample, sigma_input, common_.prediction_type, false,
                                     config_.class_name);
        const Tensor x = sample.contiguous();
        const float* px = x.data<float>();
        const float* p0 = x0.data<float>();
        const int64_t m = x.numel();
        Tensor prev = ksig::new_like(x);
        float* po = prev.data<float>();
        if (first) {
            const float dt = sigma_interpol - sigma_hat;
            for (int64_t k = 0; k < m; ++k) po[k] = px[k] + ((px[k] - p0[k]) / sigma_hat) * dt;
            stored_ = x.clone();
        } else {
            const float dt = sigma_next - sigma_hat;
            const float* ps = stored_.data<float>();
            for (int64_t k = 0; k < m; ++k) po[k] = ps[k] + ((px[k] - p0[k]) / sigma_interpol) * dt;
            stored_ = Tensor();
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return ksig::add_noise_sigma(original, noise, sig32_[size_t(i)], config_.class_name);
    }

private:
    std::vector<float> sig32_, interp32_;
    Tensor stored_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("KDPM2DiscreteScheduler", KDPM2Discrete);

}  // namespace sdxl::schedulers
