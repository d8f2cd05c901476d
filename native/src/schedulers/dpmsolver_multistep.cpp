// DPMSolverMultistepScheduler (diffusers v0.31): DPM-Solver / DPM-Solver++ and their SDE variants, orders 1-3,
// midpoint / heun second-order forms, Karras sigmas, final_sigmas_type, lower_order_final / euler_at_final.
#include <cmath>
#include <limits>

#include "schedulers/scheduler.h"
#include "schedulers/solver_common.h"

namespace sdxl::schedulers {
namespace {

using namespace solver;

class DPMSolverMultistep : public Scheduler {
public:
    explicit DPMSolverMultistep(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;  // diffusers defaults: linear 0.0001..0.02, epsilon, linspace, offset 0
        resolve_common(d);
        const std::string& name = config_.class_name;
        order_ = cfg(c.solver_order, int64_t(2));
        if (order_ < 1 || order_ > 3) fail(ErrorCode::UNSUPPORTED, name, ": solver_order ", order_, " (supported: 1, 2, 3)");
        algo_ = cfg(c.algorithm_type, std::string("dpmsolver++"));
        if (algo_ == "deis") algo_ = "dpmsolver++";  // diffusers re-registers deis as dpmsolver++
        if (algo_ != "dpmsolver++" && algo_ != "sde-dpmsolver++" && algo_ != "dpmsolver" && algo_ != "sde-dpmsolver")
            fail(ErrorCode::UNSUPPORTED, name, ": algorithm_type \"", algo_, "\"");
        solver_type_ = cfg(c.solver_type, std::string("midpoint"));
        if (solver_type_ == "logrho" || solver_type_ == "bh1" || solver_type_ == "bh2") solver_type_ = "midpoint";
        if (solver_type_ != "midpoint" && solver_type_ != "heun")
            fail(ErrorCode::UNSUPPORTED, name, ": solver_type \"", solver_type_, "\"");
        lower_order_final_ = cfg_bool(c.lower_order_final, true);
        euler_at_final_ = cfg_bool(c.euler_at_final, false);
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        final_sigmas_type_ = cfg(c.final_sigmas_type, std::string("zero"));
        if (final_sigmas_type_ != "zero" && final_sigmas_type_ != "sigma_min")
            fail(ErrorCode::UNSUPPORTED, name, ": final_sigmas_type \"", final_sigmas_type_, "\"");
        if ((algo_ == "dpmsolver" || algo_ == "sde-dpmsolver") && final_sigmas_type_ == "zero")
            fail(ErrorCode::INVALID_ARGUMENT, name, ": final_sigmas_type zero is not supported for algorithm_type ",
                 algo_, "; choose sigma_min");
        lambda_min_clipped_ = cfg(c.lambda_min_clipped, -std::numeric_limits<double>::infinity());
        if (cfg_bool(c.thresholding, false)) fail(ErrorCode::UNSUPPORTED, name, ": thresholding is not supported");
        const std::string vt = cfg(c.variance_type, std::string());
        if (vt == "learned" || vt == "learned_range")
            fail(ErrorCode::UNSUPPORTED, name, ": variance_type \"", vt, "\" is not supported");
        sde_ = algo_ == "sde-dpmsolver++" || algo_ == "sde-dpmsolver";
    }

    void set_timesteps(int64_t n) override {
        const std::string& name = config_.class_name;
        if (n < 1 || n > common_.num_train_timesteps)
            fail(ErrorCode::INVALID_ARGUMENT, name, ": num_inference_steps ", n, " must be in [1, ",
                 common_.num_train_timesteps, "]");
        const int64_t T = common_.num_train_timesteps;
        // clipped_idx = searchsorted(flip(lambda_t), lambda_min_clipped) (left), lambda_t as float32.
        int64_t clipped = 0;
        for (int64_t i = T - 1; i >= 0; --i) {
            const float a = std::sqrt(alphas_cumprod_[size_t(i)]);
            const float s = std::sqrt(1.0f - alphas_cumprod_[size_t(i)]);
            const float lam = std::log(a) - std::log(s);
            if (double(lam) < lambda_min_clipped_) ++clipped;
        }
        const int64_t last = T - clipped;
        std::vector<double> ts =
            dpm_timesteps(common_.timestep_spacing, n, T, common_.steps_offset, last, last, name);

        const std::vector<float> table = train_sigmas(alphas_cumprod_);
        std::vector<double> sig;
        if (karras_) {
            const std::vector<double> log_sigmas = log_sigmas_f32(table);
            sig = karras_sigmas(double(table.front()), double(table.back()), n);
            ts = sigma_to_t(sig, log_sigmas);
            for (double& t : ts) t = np_round(t);
        } else {
            for (double t : ts) sig.push_back(double(table[size_t(int64_t(t))]));
        }
        sig.push_back(final_sigmas_type_ == "sigma_min" ? double(table[0]) : 0.0);
        for (double& s : sig) s = double(float(s));
        for (double& t : ts) t = double(int64_t(t));
        timesteps_ = ts;
        sigmas_ = sig;
        outputs_.assign(size_t(order_), Tensor());
        lower_order_nums_ = 0;
    }

    StepResult step(const Tensor& model_output_in, int64_t i, const Tensor& sample_in, const NoiseFn& noise) override {
        check_step_index(i);
        const std::string& name = config_.class_name;
        Tensor model_output = f32_cpu(model_output_in, name, "model_output");
        Tensor sample = f32_cpu(sample_in, name, "sample");
        same_shape(model_output, sample, name);
        const int64_t N = int64_t(timesteps_.size());
        const bool lower_final = i == N - 1 && (euler_at_final_ || (lower_order_final_ && N < 15) ||
                                                final_sigmas_type_ == "zero");
        const bool lower_second = i == N - 2 && lower_order_final_ && N < 15;

        Tensor m = convert(model_output, sample, i);
        for (int64_t k = 0; k + 1 < order_; ++k) outputs_[size_t(k)] = outputs_[size_t(k + 1)];
        outputs_.back() = m;

        Tensor nz;
        if (sde_) nz = draw_noise(noise, sample.shape(), name);

        Tensor prev;
        if (order_ == 1 || lower_order_nums_ < 1 || lower_final)
            prev = first_order(m, sample, nz, i);
        else if (order_ == 2 || lower_order_nums_ < 2 || lower_second)
            prev = second_order(sample, nz, i);
        else
            prev = third_order(sample, i);
        if (lower_order_nums_ < order_) ++lower_order_nums_;
        return {prev, Tensor()};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return add_noise_alpha_sigma(original, noise, float(sigmas_[size_t(i)]), config_.class_name);
    }

private:
    float sig(int64_t k) const { return float(sigmas_[size_t(k)]); }

    Tensor convert(const Tensor& m, const Tensor& s, int64_t i) const {
        return convert_model_output(m, s, sig(i), common_.prediction_type, algo_ == "dpmsolver++" || algo_ == "sde-dpmsolver++");
    }

    Tensor first_order(const Tensor& m, const Tensor& s, const Tensor& nz, int64_t i) const {
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i));
        const float h = lambda_of(t) - lambda_of(s0);
        const float* mp = m.data<float>();
        const float* sp = s.data<float>();
        const float* zp = nz.defined() ? nz.data<float>() : nullptr;
        if (algo_ == "dpmsolver++") {
            const float A = t.sigma / s0.sigma, B = t.alpha * (std::exp(-h) - 1.0f);
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * mp[k]; });
        }
        if (algo_ == "dpmsolver") {
            const float A = t.alpha / s0.alpha, B = t.sigma * (std::exp(h) - 1.0f);
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * mp[k]; });
        }
        if (algo_ == "sde-dpmsolver++") {
            const float A = t.sigma / s0.sigma * std::exp(-h), B = t.alpha * (1.0f - std::exp(-2.0f * h));
            const float C = t.sigma * std::sqrt(1.0f - std::exp(-2.0f * h));
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] + B * mp[k] + C * zp[k]; });
        }
        const float A = t.alpha / s0.alpha, B = 2.0f * (t.sigma * (std::exp(h) - 1.0f));
        const float C = t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f);
        return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * mp[k] + C * zp[k]; });
    }

    Tensor second_order(const Tensor& s, const Tensor& nz, int64_t i) const {
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i)), s1 = alpha_sigma(sig(i - 1));
        const float lt = lambda_of(t), l0 = lambda_of(s0), l1 = lambda_of(s1);
        const float* m0 = outputs_[outputs_.size() - 1].data<float>();
        const float* m1 = outputs_[outputs_.size() - 2].data<float>();
        const float h = lt - l0, h0 = l0 - l1;
        const float r0 = h0 / h;
        const float inv_r0 = 1.0f / r0;
        const float* sp = s.data<float>();
        const float* zp = nz.defined() ? nz.data<float>() : nullptr;
        const bool mid = solver_type_ == "midpoint";
        auto d1 = [&](int64_t k) { return inv_r0 * (m0[k] - m1[k]); };
        if (algo_ == "dpmsolver++") {
            const float A = t.sigma / s0.sigma, B = t.alpha * (std::exp(-h) - 1.0f);
            if (mid) {
                const float C = 0.5f * B;
                return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m0[k] - C * d1(k); });
            }
            const float E = t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m0[k] + E * d1(k); });
        }
        if (algo_ == "dpmsolver") {
            const float A = t.alpha / s0.alpha, B = t.sigma * (std::exp(h) - 1.0f);
            if (mid) {
                const float C = 0.5f * B;
                return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m0[k] - C * d1(k); });
            }
            const float E = t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f);
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m0[k] - E * d1(k); });
        }
        if (algo_ == "sde-dpmsolver++") {
            const float A = t.sigma / s0.sigma * std::exp(-h), B = t.alpha * (1.0f - std::exp(-2.0f * h));
            const float C = t.sigma * std::sqrt(1.0f - std::exp(-2.0f * h));
            const float E = mid ? 0.5f * B : t.alpha * ((1.0f - std::exp(-2.0f * h)) / (-2.0f * h) + 1.0f);
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] + B * m0[k] + E * d1(k) + C * zp[k]; });
        }
        const float A = t.alpha / s0.alpha, B = 2.0f * (t.sigma * (std::exp(h) - 1.0f));
        const float C = t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f);
        const float E = mid ? t.sigma * (std::exp(h) - 1.0f) : 2.0f * (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f));
        return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m0[k] - E * d1(k) + C * zp[k]; });
    }

    Tensor third_order(const Tensor& s, int64_t i) const {
        if (sde_)
            fail(ErrorCode::UNSUPPORTED, config_.class_name, ": third-order steps are not defined for ", algo_);
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i)), s1 = alpha_sigma(sig(i - 1)),
                         s2 = alpha_sigma(sig(i - 2));
        const float lt = lambda_of(t), l0 = lambda_of(s0), l1 = lambda_of(s1), l2 = lambda_of(s2);
        const size_t L = outputs_.size();
        const float* m0 = outputs_[L - 1].data<float>();
        const float* m1 = outputs_[L - 2].data<float>();
        const float* m2 = outputs_[L - 3].data<float>();
        const float h = lt - l0, h0 = l0 - l1, h1 = l1 - l2;
        const float r0 = h0 / h, r1 = h1 / h;
        const float i0 = 1.0f / r0, i1 = 1.0f / r1, c1 = r0 / (r0 + r1), c2 = 1.0f / (r0 + r1);
        const float* sp = s.data<float>();
        float A, B, E, F;
        if (algo_ == "dpmsolver++") {
            A = t.sigma / s0.sigma;
            B = t.alpha * (std::exp(-h) - 1.0f);
            E = t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
            F = t.alpha * ((std::exp(-h) - 1.0f + h) / (h * h) - 0.5f);
        } else {
            A = t.alpha / s0.alpha;
            B = t.sigma * (std::exp(h) - 1.0f);
            E = -(t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f));  // "- E * D1" written as "+ (-E) * D1"
            F = t.sigma * ((std::exp(h) - 1.0f - h) / (h * h) - 0.5f);
        }
        const bool plus = algo_ == "dpmsolver++";
        return generate(s.shape(), [&](int64_t k) {
            const float d10 = i0 * (m0[k] - m1[k]), d11 = i1 * (m1[k] - m2[k]);
            const float D1 = d10 + c1 * (d10 - d11);
            const float D2 = c2 * (d10 - d11);
            const float base = A * sp[k] - B * m0[k];
            const float withd1 = plus ? base + E * D1 : base - (-E) * D1;
            return withd1 - F * D2;
        });
    }

    int64_t order_ = 2;
    std::string algo_, solver_type_, final_sigmas_type_;
    bool lower_order_final_ = true, euler_at_final_ = false, karras_ = false, sde_ = false;
    double lambda_min_clipped_ = 0;
    std::vector<Tensor> outputs_;
    int64_t lower_order_nums_ = 0;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("DPMSolverMultistepScheduler", DPMSolverMultistep);

}  // namespace sdxl::schedulers
