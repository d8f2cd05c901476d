// diffusers v0.31 KDPM2AncestralDiscreteScheduler: DPM-Solver-2 towards sigma_down with ancestral noise
// (sigma_up) added after the second evaluation. torch.randn(shape, generator) is drawn only in the second
// (2nd-order) half of each pair, as diffusers v0.31 does (checked against the reference trajectories).
#include <cmath>

#include "schedulers/k_dpm_2_common.h"

namespace sdxl::schedulers {
namespace {

using kdpm2::expf32;
using kdpm2::interleave;
using kdpm2::lerp_half;
using kdpm2::logf32;

class KDPM2AncestralDiscrete : public kdpm2::Base {
public:
    using Base::Base;

    void set_timesteps(int64_t n) override {
        const Schedule sched = base_schedule(n);
        const std::vector<double>& ts = sched.ts;
        const std::vector<float>& s = sched.s;
        const std::vector<float>& log_train = sched.log_train;
        const size_t L = s.size();
        std::vector<float> up(L), down(L), si(L);
        for (size_t k = 0; k < L; ++k) {
            const float sn = k + 1 < L ? s[k + 1] : 0.0f;
            const float sn2 = sn * sn, s2 = s[k] * s[k];
            up[k] = std::sqrt(sn2 * (s2 - sn2) / s2);  // NaN for the final 0 sigma, as in diffusers (unused)
            down[k] = std::sqrt(sn2 - up[k] * up[k]);
        }
        down[L - 1] = 0.0f;
        for (size_t k = 0; k < L; ++k) si[k] = expf32(lerp_half(logf32(s[k]), logf32(down[k])));
        si[L - 1] = 0.0f;
        if (L >= 2) si[L - 2] = 0.0f;
        sig32_ = interleave(s);
        interp32_ = interleave(si);
        up32_ = interleave(up);
        down32_ = interleave(down);
        sigmas_.assign(sig32_.begin(), sig32_.end());
        // timesteps: [t0] + stack(ti[:-2], t[1:]).flatten()
        timesteps_.assign(1, double(float(ts[0])));
        for (size_t k = 1; k < ts.size(); ++k) {
            timesteps_.push_back(double(ksig::sigma_to_t_torch(si[k - 1], log_train)));
            timesteps_.push_back(double(float(ts[k])));
        }
        stored_ = Tensor();
    }

    double init_noise_sigma() const override { return ksig::init_noise_sigma(sig32_, common_.timestep_spacing); }

    Tensor scale_model_input(const Tensor& sample, int64_t i) override {
        check_step_index(i);
        if (stored_.defined() && i < 1) fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": bad step index");
        const float sigma = !stored_.defined() ? sig32_[size_t(i)] : interp32_[size_t(i) - 1];
        return ksig::scale_by_sigma(sample, sigma);
    }

    StepResult step(const Tensor& model_output, int64_t i, const Tensor& sample, const NoiseFn& noise) override {
        check_step_index(i);
        if (!noise) fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": step needs a noise generator");
        const bool first = !stored_.defined();
        if (!first && i < 1) fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": bad step index");
        const size_t u = size_t(i);
        const size_t j = first ? u : u - 1;
        const float sigma = sig32_[j];
        const float sigma_interpol = interp32_[j];
        const float sigma_up = up32_[j];
        const float sigma_hat = sigma;  // gamma = 0
        const Tensor x = sample.contiguous();
        const float sigma_input = first ? sigma_hat : sigma_interpol;
        Tensor x0 = ksig::predict_x0(model_output, sample, sigma_input, common_.prediction_type, false,
                                     config_.class_name);
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
            const float sigma_down = down32_[u - 1];
            const float dt = sigma_down - sigma_hat;
            const float* ps = stored_.data<float>();
            const Tensor z = noise(x.shape()).contiguous();
            ksig::check_pair(x, z, config_.class_name + ".step noise");
            const float* pz = z.data<float>();
            for (int64_t k = 0; k < m; ++k) {
                const float p = ps[k] + ((px[k] - p0[k]) / sigma_interpol) * dt;
                po[k] = p + pz[k] * sigma_up;
            }
            stored_ = Tensor();
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return ksig::add_noise_sigma(original, noise, sig32_[size_t(i)], config_.class_name);
    }

private:
    std::vector<float> sig32_, interp32_, up32_, down32_;
    Tensor stored_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("KDPM2AncestralDiscreteScheduler", KDPM2AncestralDiscrete);

}  // namespace sdxl::schedulers
