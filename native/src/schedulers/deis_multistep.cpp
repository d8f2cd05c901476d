// DEISMultistepScheduler (diffusers v0.31): log-rho DEIS, orders 1-3, lower_order_final, Karras sigmas.
// The last sigma is the smallest training sigma (DEIS has no final_sigmas_type).
#include <cmath>

#include "schedulers/scheduler.h"
#include "schedulers/simd_log.h"
#include "schedulers/solver_common.h"

namespace sdxl::schedulers {
namespace {

using namespace solver;

class DEISMultistep : public Scheduler {
public:
    explicit DEISMultistep(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        resolve_common(d);
        const std::string& name = config_.class_name;
        order_ = cfg(c.solver_order, int64_t(2));
        if (order_ < 1 || order_ > 3) fail(ErrorCode::UNSUPPORTED, name, ": solver_order ", order_, " (supported: 1, 2, 3)");
        std::string algo = cfg(c.algorithm_type, std::string("deis"));
        if (algo == "dpmsolver" || algo == "dpmsolver++") algo = "deis";  // diffusers re-registers these as deis
        if (algo != "deis") fail(ErrorCode::UNSUPPORTED, name, ": algorithm_type \"", algo, "\"");
        std::string st = cfg(c.solver_type, std::string("logrho"));
        if (st == "midpoint" || st == "heun" || st == "bh1" || st == "bh2") st = "logrho";
        if (st != "logrho") fail(ErrorCode::UNSUPPORTED, name, ": solver_type \"", st, "\"");
        lower_order_final_ = cfg_bool(c.lower_order_final, true);
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        if (cfg_bool(c.thresholding, false)) fail(ErrorCode::UNSUPPORTED, name, ": thresholding is not supported");
    }

    void set_timesteps(int64_t n) override {
        const std::string& name = config_.class_name;
        const int64_t T = common_.num_train_timesteps;
        if (n < 1 || n > T) fail(ErrorCode::INVALID_ARGUMENT, name, ": num_inference_steps ", n, " must be in [1, ", T, "]");
        std::vector<double> ts = dpm_timesteps(common_.timestep_spacing, n, T, common_.steps_offset, T, T, name);
        const std::vector<float> table = train_sigmas(alphas_cumprod_);
        std::vector<double> sig;
        if (karras_) {
            const std::vector<double> log_sigmas = log_sigmas_f32(table);
            sig = karras_sigmas(double(table.front()), double(table.back()), n);
            ts = sigma_to_t(sig, log_sigmas);
            for (double& t : ts) t = np_round(t);
            sig.push_back(sig.back());
        } else {
            for (double t : ts) {
                if (t < 0 || t >= double(T))
                    fail(ErrorCode::INVALID_ARGUMENT, name, ": timestep ", t, " is outside the training range");
                sig.push_back(double(table[size_t(int64_t(t))]));
            }
            sig.push_back(double(table[0]));
        }
        for (double& s : sig) s = double(float(s));
        for (double& t : ts) t = double(int64_t(t));
        timesteps_ = ts;
        sigmas_ = sig;
        outputs_.assign(size_t(order_), Tensor());
        lower_order_nums_ = 0;
    }

    StepResult step(const Tensor& model_output_in, int64_t i, const Tensor& sample_in, const NoiseFn&) override {
        check_step_index(i);
        const std::string& name = config_.class_name;
        Tensor mo = f32_cpu(model_output_in, name, "model_output");
        Tensor sample = f32_cpu(sample_in, name, "sample");
        same_shape(mo, sample, name);
        const int64_t N = int64_t(timesteps_.size());
        const bool lower_final = i == N - 1 && lower_order_final_ && N < 15;
        const bool lower_second = i == N - 2 && lower_order_final_ && N < 15;
        Tensor m = convert(mo, sample, i);
        for (int64_t k = 0; k + 1 < order_; ++k) outputs_[size_t(k)] = outputs_[size_t(k + 1)];
        outputs_.back() = m;
        Tensor prev;
        if (order_ == 1 || lower_order_nums_ < 1 || lower_final)
            prev = first_order(m, sample, i);
        else if (order_ == 2 || lower_order_nums_ < 2 || lower_second)
            prev = second_order(sample, i);
        else
            prev = third_order(sample, i);
        if (lower_order_nums_ < order_) ++lower_order_nums_;
        return {prev, Tensor()};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return add_noise_ac(original, noise, alphas_cumprod_[size_t(timesteps_[size_t(i)])], config_.class_name);
    }

private:
    float sig(int64_t k) const { return float(sigmas_[size_t(k)]); }

    // x0 prediction, then back to the noise prediction DEIS integrates.
    Tensor convert(const Tensor& m, const Tensor& s, int64_t i) const {
        const float* mp = m.data<float>();
        const float* sp = s.data<float>();
        const std::string& pt = common_.prediction_type;
        const AlphaSigma v = alpha_sigma(sig(i));
        const float at = v.alpha, st = v.sigma;
        return generate(m.shape(), [&](int64_t k) {
            float x0;
            if (pt == "epsilon") x0 = (sp[k] - st * mp[k]) / at;
            else if (pt == "sample") x0 = mp[k];
            else x0 = at * sp[k] - st * mp[k];
            return (sp[k] - at * x0) / st;
        });
    }

    Tensor first_order(const Tensor& m, const Tensor& s, int64_t i) const {
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i));
        const float h = lambda_of(t) - lambda_of(s0);
        const float A = t.alpha / s0.alpha, B = t.sigma * (std::exp(h) - 1.0f);
        const float* mp = m.data<float>();
        const float* sp = s.data<float>();
        return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * mp[k]; });
    }

    // diffusers' DEIS coefficients call np.log on float32 0-d tensors: numpy's own SIMD float32 log kernel
    // (simd_log.h np_logf, up to ~3.8 ulp from the correctly rounded value), not libm's logf. With logf the
    // coefficients differ in the last bits and a 30-step trajectory drifts past 1e-5 (issue 16).
    static float lg(float v) { return simdlog::np_logf(v); }

    Tensor second_order(const Tensor& s, int64_t i) const {
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i)), s1 = alpha_sigma(sig(i - 1));
        const float rt = t.sigma / t.alpha, r0 = s0.sigma / s0.alpha, r1 = s1.sigma / s1.alpha;
        auto ind = [](float tt, float b, float c) { return tt * (-lg(c) + lg(tt) - 1.0f) / (lg(b) - lg(c)); };
        const float c1 = ind(rt, r0, r1) - ind(r0, r0, r1);
        const float c2 = ind(rt, r1, r0) - ind(r0, r1, r0);
        const size_t L = outputs_.size();
        const float* m0 = outputs_[L - 1].data<float>();
        const float* m1 = outputs_[L - 2].data<float>();
        const float* sp = s.data<float>();
        const float a0 = s0.alpha, at = t.alpha;
        return generate(s.shape(), [&](int64_t k) { return at * (sp[k] / a0 + c1 * m0[k] + c2 * m1[k]); });
    }

    Tensor third_order(const Tensor& s, int64_t i) const {
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i)), s1 = alpha_sigma(sig(i - 1)),
                         s2 = alpha_sigma(sig(i - 2));
        const float rt = t.sigma / t.alpha, r0 = s0.sigma / s0.alpha, r1 = s1.sigma / s1.alpha, r2 = s2.sigma / s2.alpha;
        auto ind = [](float tt, float b, float c, float d) {
            const float lt = lg(tt), lc = lg(c), ld = lg(d), lb = lg(b);
            const float num = tt * (lc * (ld - lt + 1.0f) - ld * lt + ld + lt * lt - 2.0f * lt + 2.0f);
            const float den = (lb - lc) * (lb - ld);
            return num / den;
        };
        const float c1 = ind(rt, r0, r1, r2) - ind(r0, r0, r1, r2);
        const float c2 = ind(rt, r1, r2, r0) - ind(r0, r1, r2, r0);
        const float c3 = ind(rt, r2, r0, r1) - ind(r0, r2, r0, r1);
        const size_t L = outputs_.size();
        const float* m0 = outputs_[L - 1].data<float>();
        const float* m1 = outputs_[L - 2].data<float>();
        const float* m2 = outputs_[L - 3].data<float>();
        const float* sp = s.data<float>();
        const float a0 = s0.alpha, at = t.alpha;
        return generate(s.shape(),
                        [&](int64_t k) { return at * (sp[k] / a0 + c1 * m0[k] + c2 * m1[k] + c3 * m2[k]); });
    }

    int64_t order_ = 2, lower_order_nums_ = 0;
    bool lower_order_final_ = true, karras_ = false;
    std::vector<Tensor> outputs_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("DEISMultistepScheduler", DEISMultistep);

}  // namespace sdxl::schedulers
