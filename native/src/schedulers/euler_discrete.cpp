// diffusers v0.31 EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2) with s_churn = 0 (the step()
// defaults: gamma = 0, no noise is used).
#include <cmath>

#include "schedulers/k_sigmas.h"

namespace sdxl::schedulers {
namespace {

class EulerDiscrete : public Scheduler {
public:
    explicit EulerDiscrete(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.beta_start = 0.0001;
        d.beta_end = 0.02;
        d.beta_schedule = "linear";
        d.timestep_spacing = "linspace";
        d.steps_offset = 0;
        resolve_common(d);
        interpolation_ = cfg(c.interpolation_type, "linear");
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        final_sigmas_ = cfg(c.final_sigmas_type, "zero");
        timestep_type_ = cfg(c.timestep_type, "discrete");
        if (interpolation_ != "linear" && interpolation_ != "log_linear")
            fail(ErrorCode::UNSUPPORTED, c.class_name, ": interpolation_type \"", interpolation_, "\"");
        if (final_sigmas_ != "zero" && final_sigmas_ != "sigma_min")
            fail(ErrorCode::UNSUPPORTED, c.class_name, ": final_sigmas_type \"", final_sigmas_, "\"");
        if (timestep_type_ != "discrete" && timestep_type_ != "continuous")
            fail(ErrorCode::UNSUPPORTED, c.class_name, ": timestep_type \"", timestep_type_, "\"");
    }

    void set_timesteps(int64_t n) override {
        const std::string& who = config_.class_name;
        const std::vector<float> ts32 = ksig::spacing_timesteps_f32(common_.timestep_spacing, n,
                                                                    common_.num_train_timesteps,
                                                                    common_.steps_offset, who);
        const std::vector<float> train = ksig::train_sigmas(alphas_cumprod_);
        const std::vector<float> log_train = ksig::log_f32(train);
        std::vector<double> ts(ts32.begin(), ts32.end());
        std::vector<double> sig;
        if (interpolation_ == "linear") {
            sig = ksig::interp(ts, train);
        } else {
            // torch.linspace(np.log(sigmas[-1]), np.log(sigmas[0]), n + 1).exp() (float32)
            std::vector<float> l = ksig::torch_linspace(log_train.back(), log_train.front(), n + 1);
            for (float v : l) sig.push_back(double(std::exp(v)));
        }
        if (karras_) {
            sig = karras_sigmas(sig.back(), sig.front(), n);
            ts.clear();
            for (double s : sig) ts.push_back(ksig::sigma_to_t_np(s, log_train));
        }
        float last = 0.0f;
        if (final_sigmas_ == "sigma_min") last = std::sqrt((1.0f - alphas_cumprod_[0]) / alphas_cumprod_[0]);
        sig32_.clear();
        for (double s : sig) sig32_.push_back(float(s));
        sig32_.push_back(last);
        sigmas_.assign(sig32_.begin(), sig32_.end());
        timesteps_.clear();
        if (timestep_type_ == "continuous" && common_.prediction_type == "v_prediction") {
            for (int64_t i = 0; i < n; ++i) timesteps_.push_back(double(0.25f * std::log(sig32_[size_t(i)])));
        } else {
            for (double t : ts) timesteps_.push_back(double(float(t)));
        }
    }

    double init_noise_sigma() const override { return ksig::init_noise_sigma(sig32_, common_.timestep_spacing); }

    Tensor scale_model_input(const Tensor& sample, int64_t i) override {
        check_step_index(i);
        return ksig::scale_by_sigma(sample, sig32_[size_t(i)]);
    }

    StepResult step(const Tensor& model_output, int64_t i, const Tensor& sample, const NoiseFn&) override {
        check_step_index(i);
        const float sigma = sig32_[size_t(i)];
        const float sigma_hat = sigma;  // gamma = 0
        // (v_prediction uses sigma, equal to sigma_hat with gamma = 0)
        Tensor x0 = ksig::predict_x0(model_output, sample, sigma_hat, common_.prediction_type, true,
                                     config_.class_name);
        const float dt = sig32_[size_t(i) + 1] - sigma_hat;
        const Tensor x = sample.contiguous();
        Tensor prev = ksig::new_like(x);
        const float* px = x.data<float>();
        const float* p0 = x0.data<float>();
        float* po = prev.data<float>();
        for (int64_t k = 0, m = x.numel(); k < m; ++k) {
            const float derivative = (px[k] - p0[k]) / sigma_hat;
            po[k] = px[k] + derivative * dt;
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return ksig::add_noise_sigma(original, noise, sig32_[size_t(i)], config_.class_name);
    }

private:
    std::string interpolation_, final_sigmas_, timestep_type_;
    bool karras_ = false;
    std::vector<float> sig32_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("EulerDiscreteScheduler", EulerDiscrete);

}  // namespace sdxl::schedulers
