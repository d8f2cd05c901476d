// DDPMScheduler (diffusers v0.31): ancestral sampling with variance_type fixed_small / fixed_small_log /
// fixed_large; one torch.randn(shape, generator) per step with t > 0.
#include <algorithm>
#include <cmath>

#include "schedulers/scheduler.h"
#include "schedulers/solver_common.h"

namespace sdxl::schedulers {
namespace {

using namespace solver;

class DDPM : public Scheduler {
public:
    explicit DDPM(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.timestep_spacing = "leading";
        resolve_common(d);
        const std::string& name = config_.class_name;
        clip_sample_ = cfg_bool(c.clip_sample, true);
        clip_range_ = cfg(c.clip_sample_range, 1.0);
        variance_type_ = cfg(c.variance_type, std::string("fixed_small"));
        if (variance_type_ != "fixed_small" && variance_type_ != "fixed_small_log" && variance_type_ != "fixed_large")
            fail(ErrorCode::UNSUPPORTED, name, ": variance_type \"", variance_type_,
                 "\" (supported: fixed_small, fixed_small_log, fixed_large)");
        if (cfg_bool(c.thresholding, false)) fail(ErrorCode::UNSUPPORTED, name, ": thresholding is not supported");
    }

    void set_timesteps(int64_t n) override {
        const std::string& name = config_.class_name;
        if (n < 1 || n > common_.num_train_timesteps)
            fail(ErrorCode::INVALID_ARGUMENT, name, ": num_inference_steps ", n, " must be in [1, ",
                 common_.num_train_timesteps, "]");
        timesteps_ = ddim_timesteps(common_.timestep_spacing, n, common_.num_train_timesteps, common_.steps_offset, name);
        for (double t : timesteps_)
            if (t < 0 || t >= double(common_.num_train_timesteps))
                fail(ErrorCode::INVALID_ARGUMENT, name, ": timestep ", t, " is outside the training range (steps_offset?)");
    }

    StepResult step(const Tensor& model_output_in, int64_t i, const Tensor& sample_in, const NoiseFn& noise) override {
        check_step_index(i);
        const std::string& name = config_.class_name;
        Tensor mo = f32_cpu(model_output_in, name, "model_output");
        Tensor sa = f32_cpu(sample_in, name, "sample");
        same_shape(mo, sa, name);
        const int64_t t = int64_t(timesteps_[size_t(i)]);
        // previous_timestep(): the next entry of timesteps, -1 after the last
        const int64_t prev_t = i + 1 < int64_t(timesteps_.size()) ? int64_t(timesteps_[size_t(i + 1)]) : -1;
        const float a_t = alphas_cumprod_[size_t(t)];
        const float a_prev = prev_t >= 0 ? alphas_cumprod_[size_t(prev_t)] : 1.0f;
        const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
        const float cur_alpha = a_t / a_prev, cur_beta = 1.0f - cur_alpha;
        const float sa_t = std::sqrt(a_t), sb_t = std::sqrt(b_t);
        const float* m = mo.data<float>();
        const float* s = sa.data<float>();
        const std::string& pt = common_.prediction_type;
        Tensor x0 = generate(sa.shape(), [&](int64_t k) {
            if (pt == "epsilon") return (s[k] - sb_t * m[k]) / sa_t;
            if (pt == "sample") return m[k];
            return sa_t * s[k] - sb_t * m[k];
        });
        float* x0p = x0.data<float>();
        const int64_t n = x0.numel();
        if (clip_sample_) {
            const float r = float(clip_range_);
            for (int64_t k = 0; k < n; ++k) x0p[k] = std::min(std::max(x0p[k], -r), r);
        }
        const float x0_coef = (std::sqrt(a_prev) * cur_beta) / b_t;
        const float cur_coef = std::sqrt(cur_alpha) * b_prev / b_t;
        Tensor prev = generate(sa.shape(), [&](int64_t k) { return x0_coef * x0p[k] + cur_coef * s[k]; });
        if (t > 0) {
            Tensor z = draw_noise(noise, mo.shape(), name);
            // _get_variance(t)
            float var = b_prev / b_t * cur_beta;
            var = std::max(var, 1e-20f);
            float scale;
            if (variance_type_ == "fixed_small") scale = std::sqrt(var);
            else if (variance_type_ == "fixed_small_log") scale = std::exp(0.5f * std::log(var));
            else scale = std::sqrt(cur_beta);  // fixed_large
            const float* zp = z.data<float>();
            float* pp = prev.data<float>();
            for (int64_t k = 0; k < n; ++k) pp[k] = pp[k] + scale * zp[k];
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return add_noise_ac(original, noise, alphas_cumprod_[size_t(timesteps_[size_t(i)])], config_.class_name);
    }

private:
    bool clip_sample_ = true;
    double clip_range_ = 1.0;
    std::string variance_type_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("DDPMScheduler", DDPM);

}  // namespace sdxl::schedulers
