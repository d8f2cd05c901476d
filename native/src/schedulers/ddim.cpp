// DDIMScheduler (diffusers v0.31): deterministic for eta = 0 (SchedulerConfig::eta, a step() argument in
// diffusers), set_alpha_to_one, clip_sample; prediction types epsilon / sample / v_prediction.
#include <cmath>

#include "schedulers/scheduler.h"
#include "schedulers/solver_common.h"

namespace sdxl::schedulers {
namespace {

using namespace solver;

class DDIM : public Scheduler {
public:
    explicit DDIM(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.timestep_spacing = "leading";
        resolve_common(d);
        const std::string& name = config_.class_name;
        clip_sample_ = cfg_bool(c.clip_sample, true);
        clip_range_ = cfg(c.clip_sample_range, 1.0);
        set_alpha_to_one_ = cfg_bool(c.set_alpha_to_one, true);
        eta_ = cfg(c.eta, 0.0);
        if (eta_ < 0) fail(ErrorCode::INVALID_ARGUMENT, name, ": eta must be >= 0");
        if (cfg_bool(c.thresholding, false)) fail(ErrorCode::UNSUPPORTED, name, ": thresholding is not supported");
        final_alpha_cumprod_ = set_alpha_to_one_ ? 1.0f : alphas_cumprod_[0];
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
        num_inference_steps_ = n;
    }

    StepResult step(const Tensor& model_output_in, int64_t i, const Tensor& sample_in, const NoiseFn& noise) override {
        check_step_index(i);
        const std::string& name = config_.class_name;
        Tensor mo = f32_cpu(model_output_in, name, "model_output");
        Tensor sa = f32_cpu(sample_in, name, "sample");
        same_shape(mo, sa, name);
        const int64_t t = int64_t(timesteps_[size_t(i)]);
        const int64_t prev_t = t - common_.num_train_timesteps / num_inference_steps_;
        const float a_t = alphas_cumprod_[size_t(t)];
        const float a_prev = prev_t >= 0 ? alphas_cumprod_[size_t(prev_t)] : final_alpha_cumprod_;
        const float b_t = 1.0f - a_t;
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
        // pred_epsilon from the unclipped x0 (use_clipped_model_output = False)
        Tensor eps = generate(sa.shape(), [&](int64_t k) {
            if (pt == "epsilon") return m[k];
            if (pt == "sample") return (s[k] - sa_t * x0p[k]) / sb_t;
            return sa_t * m[k] + sb_t * s[k];
        });
        if (clip_sample_) {
            const float r = float(clip_range_);
            for (int64_t k = 0; k < n; ++k) x0p[k] = std::min(std::max(x0p[k], -r), r);
        }
        // _get_variance
        const float b_prev = 1.0f - a_prev;
        const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
        const float std_dev = float(eta_) * std::sqrt(variance);
        const float dir_coef = std::sqrt(1.0f - a_prev - std_dev * std_dev);
        const float sa_prev = std::sqrt(a_prev);
        const float* ep = eps.data<float>();
        Tensor prev = generate(sa.shape(), [&](int64_t k) { return sa_prev * x0p[k] + dir_coef * ep[k]; });
        if (eta_ > 0) {
            Tensor z = draw_noise(noise, mo.shape(), name);
            const float* zp = z.data<float>();
            float* pp = prev.data<float>();
            for (int64_t k = 0; k < n; ++k) pp[k] = pp[k] + std_dev * zp[k];
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return add_noise_ac(original, noise, alphas_cumprod_[size_t(timesteps_[size_t(i)])], config_.class_name);
    }

private:
    bool clip_sample_ = true, set_alpha_to_one_ = true;
    double clip_range_ = 1.0, eta_ = 0.0;
    float final_alpha_cumprod_ = 1.0f;
    int64_t num_inference_steps_ = 0;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("DDIMScheduler", DDIM);

}  // namespace sdxl::schedulers
