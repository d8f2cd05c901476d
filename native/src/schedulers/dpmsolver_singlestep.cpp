// DPMSolverSinglestepScheduler (diffusers v0.31): singlestep DPM-Solver(++) of orders 1-2 (midpoint / heun),
// the order pattern of get_order_list, Karras sigmas, final_sigmas_type. Timesteps are always
// round(linspace(0, T - 1 - clipped, n + 1))[::-1][:-1] (this class ignores timestep_spacing).
#include <cmath>
#include <limits>

#include "schedulers/scheduler.h"
#include "schedulers/solver_common.h"

namespace sdxl::schedulers {
namespace {

using namespace solver;

class DPMSolverSinglestep : public Scheduler {
public:
    explicit DPMSolverSinglestep(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        resolve_common(d);
        const std::string& name = config_.class_name;
        order_ = cfg(c.solver_order, int64_t(2));
        if (order_ < 1 || order_ > 2) fail(ErrorCode::UNSUPPORTED, name, ": solver_order ", order_, " (supported: 1, 2)");
        algo_ = cfg(c.algorithm_type, std::string("dpmsolver++"));
        if (algo_ == "deis") algo_ = "dpmsolver++";
        if (algo_ != "dpmsolver++" && algo_ != "dpmsolver")
            fail(ErrorCode::UNSUPPORTED, name, ": algorithm_type \"", algo_, "\" (supported: dpmsolver++, dpmsolver)");
        solver_type_ = cfg(c.solver_type, std::string("midpoint"));
        if (solver_type_ == "logrho" || solver_type_ == "bh1" || solver_type_ == "bh2") solver_type_ = "midpoint";
        if (solver_type_ != "midpoint" && solver_type_ != "heun")
            fail(ErrorCode::UNSUPPORTED, name, ": solver_type \"", solver_type_, "\"");
        lower_order_final_ = cfg_bool(c.lower_order_final, true);
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        final_sigmas_type_ = cfg(c.final_sigmas_type, std::string("zero"));
        if (final_sigmas_type_ != "zero" && final_sigmas_type_ != "sigma_min")
            fail(ErrorCode::UNSUPPORTED, name, ": final_sigmas_type \"", final_sigmas_type_, "\"");
        if (algo_ == "dpmsolver" && final_sigmas_type_ == "zero")
            fail(ErrorCode::INVALID_ARGUMENT, name, ": final_sigmas_type zero is not supported for dpmsolver; "
                 "choose sigma_min");
        lambda_min_clipped_ = cfg(c.lambda_min_clipped, -std::numeric_limits<double>::infinity());
        if (cfg_bool(c.thresholding, false)) fail(ErrorCode::UNSUPPORTED, name, ": thresholding is not supported");
        const std::string vt = cfg(c.variance_type, std::string());
        if (vt == "learned" || vt == "learned_range")
            fail(ErrorCode::UNSUPPORTED, name, ": variance_type \"", vt, "\" is not supported");
    }

    void set_timesteps(int64_t n) override {
        const std::string& name = config_.class_name;
        const int64_t T = common_.num_train_timesteps;
        if (n < 1 || n > T) fail(ErrorCode::INVALID_ARGUMENT, name, ": num_inference_steps ", n, " must be in [1, ", T, "]");
        int64_t clipped = 0;
        for (int64_t i = 0; i < T; ++i) {
            const float a = std::sqrt(alphas_cumprod_[size_t(i)]);
            const float s = std::sqrt(1.0f - alphas_cumprod_[size_t(i)]);
            if (double(std::log(a) - std::log(s)) < lambda_min_clipped_) ++clipped;
        }
        std::vector<double> l = linspace64(0.0, double(T - 1 - clipped), n + 1);
        std::vector<double> ts;
        for (int64_t i = n; i >= 1; --i) ts.push_back(np_round(l[size_t(i)]));
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
        block_sample_ = Tensor();
        // get_order_list (diffusers forces lower_order_final when final_sigmas_type is zero or n % order != 0)
        const bool lof = lower_order_final_ || n % order_ != 0 || final_sigmas_type_ == "zero";
        orders_.clear();
        if (order_ == 2) {
            if (lof) {
                if (n % 2 == 0) {
                    for (int64_t k = 0; k < n / 2 - 1; ++k) orders_.insert(orders_.end(), {1, 2});
                    orders_.insert(orders_.end(), {1, 1});
                } else {
                    for (int64_t k = 0; k < n / 2; ++k) orders_.insert(orders_.end(), {1, 2});
                    orders_.push_back(1);
                }
            } else {
                for (int64_t k = 0; k < n / 2; ++k) orders_.insert(orders_.end(), {1, 2});
            }
        } else {
            orders_.assign(size_t(n), 1);
        }
        if (final_sigmas_type_ == "zero" && !orders_.empty()) orders_.back() = 1;
    }

    StepResult step(const Tensor& model_output_in, int64_t i, const Tensor& sample_in, const NoiseFn&) override {
        check_step_index(i);
        const std::string& name = config_.class_name;
        Tensor mo = f32_cpu(model_output_in, name, "model_output");
        Tensor sample = f32_cpu(sample_in, name, "sample");
        same_shape(mo, sample, name);
        Tensor m = convert(mo, sample, i);
        for (int64_t k = 0; k + 1 < order_; ++k) outputs_[size_t(k)] = outputs_[size_t(k + 1)];
        outputs_.back() = m;
        int64_t order = orders_[size_t(i)];
        while (order > 1 && !outputs_[outputs_.size() - size_t(order)].defined()) --order;
        if (order == 1) block_sample_ = sample;
        Tensor prev = order == 1 ? first_order(m, block_sample_, i) : second_order(block_sample_, i);
        return {prev, Tensor()};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return add_noise_alpha_sigma(original, noise, float(sigmas_[size_t(i)]), config_.class_name);
    }

private:
    float sig(int64_t k) const { return float(sigmas_[size_t(k)]); }

    Tensor convert(const Tensor& m, const Tensor& s, int64_t i) const {
        return convert_model_output(m, s, sig(i), common_.prediction_type, algo_ == "dpmsolver++");
    }

    Tensor first_order(const Tensor& m, const Tensor& s, int64_t i) const {
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i));
        const float h = lambda_of(t) - lambda_of(s0);
        const float* mp = m.data<float>();
        const float* sp = s.data<float>();
        if (algo_ == "dpmsolver++") {
            const float A = t.sigma / s0.sigma, B = t.alpha * (std::exp(-h) - 1.0f);
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * mp[k]; });
        }
        const float A = t.alpha / s0.alpha, B = t.sigma * (std::exp(h) - 1.0f);
        return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * mp[k]; });
    }

    // singlestep_dpm_solver_second_order_update: from the block's start sample at s1 = sigmas[i - 1].
    Tensor second_order(const Tensor& s, int64_t i) const {
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i)), s1 = alpha_sigma(sig(i - 1));
        const float lt = lambda_of(t), l0 = lambda_of(s0), l1 = lambda_of(s1);
        const size_t L = outputs_.size();
        const float* m0 = outputs_[L - 1].data<float>();
        const float* m1 = outputs_[L - 2].data<float>();
        const float h = lt - l1, h0 = l0 - l1;
        const float r0 = h0 / h;
        const float inv_r0 = 1.0f / r0;
        const float* sp = s.data<float>();
        auto d1 = [&](int64_t k) { return inv_r0 * (m0[k] - m1[k]); };
        const bool mid = solver_type_ == "midpoint";
        if (algo_ == "dpmsolver++") {
            const float A = t.sigma / s1.sigma, B = t.alpha * (std::exp(-h) - 1.0f);
            if (mid) {
                const float C = 0.5f * B;
                return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m1[k] - C * d1(k); });
            }
            const float E = t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m1[k] + E * d1(k); });
        }
        const float A = t.alpha / s1.alpha, B = t.sigma * (std::exp(h) - 1.0f);
        if (mid) {
            const float C = 0.5f * B;
            return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m1[k] - C * d1(k); });
        }
        const float E = t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f);
        return generate(s.shape(), [&](int64_t k) { return A * sp[k] - B * m1[k] - E * d1(k); });
    }

    int64_t order_ = 2;
    std::string algo_, solver_type_, final_sigmas_type_;
    bool lower_order_final_ = true, karras_ = false;
    double lambda_min_clipped_ = 0;
    std::vector<Tensor> outputs_;
    std::vector<int64_t> orders_;
    Tensor block_sample_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("DPMSolverSinglestepScheduler", DPMSolverSinglestep);

}  // namespace sdxl::schedulers
