// UniPCMultistepScheduler (diffusers v0.31): UniP predictor + UniC corrector, B(h) variants bh1 / bh2,
// predict_x0 (data or noise prediction), lower_order_final, disable_corrector, Karras sigmas,
// final_sigmas_type. solver_p is not supported.
#include <algorithm>
#include <cmath>

#include "schedulers/scheduler.h"
#include "schedulers/solver_common.h"

namespace sdxl::schedulers {
namespace {

using namespace solver;

class UniPCMultistep : public Scheduler {
public:
    explicit UniPCMultistep(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        resolve_common(d);
        const std::string& name = config_.class_name;
        order_ = cfg(c.solver_order, int64_t(2));
        if (order_ < 1 || order_ > 3) fail(ErrorCode::UNSUPPORTED, name, ": solver_order ", order_, " (supported: 1, 2, 3)");
        predict_x0_ = cfg_bool(c.predict_x0, true);
        solver_type_ = cfg(c.solver_type, std::string("bh2"));
        if (solver_type_ == "midpoint" || solver_type_ == "heun" || solver_type_ == "logrho") solver_type_ = "bh2";
        if (solver_type_ != "bh1" && solver_type_ != "bh2")
            fail(ErrorCode::UNSUPPORTED, name, ": solver_type \"", solver_type_, "\"");
        lower_order_final_ = cfg_bool(c.lower_order_final, true);
        disable_corrector_ = c.disable_corrector;
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        final_sigmas_type_ = cfg(c.final_sigmas_type, std::string("zero"));
        if (final_sigmas_type_ != "zero" && final_sigmas_type_ != "sigma_min")
            fail(ErrorCode::UNSUPPORTED, name, ": final_sigmas_type \"", final_sigmas_type_, "\"");
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
            sig.push_back(final_sigmas_type_ == "sigma_min" ? sig.back() : 0.0);
        } else {
            for (double t : ts) {
                if (t < 0 || t >= double(T))
                    fail(ErrorCode::INVALID_ARGUMENT, name, ": timestep ", t, " is outside the training range");
                sig.push_back(double(table[size_t(int64_t(t))]));
            }
            sig.push_back(final_sigmas_type_ == "sigma_min" ? double(table[0]) : 0.0);
        }
        for (double& s : sig) s = double(float(s));
        for (double& t : ts) t = double(int64_t(t));
        timesteps_ = ts;
        sigmas_ = sig;
        outputs_.assign(size_t(order_), Tensor());
        lower_order_nums_ = 0;
        last_sample_ = Tensor();
        this_order_ = 0;
    }

    StepResult step(const Tensor& model_output_in, int64_t i, const Tensor& sample_in, const NoiseFn&) override {
        check_step_index(i);
        const std::string& name = config_.class_name;
        Tensor mo = f32_cpu(model_output_in, name, "model_output");
        Tensor sample = f32_cpu(sample_in, name, "sample");
        same_shape(mo, sample, name);
        const bool use_corrector =
            i > 0 && std::find(disable_corrector_.begin(), disable_corrector_.end(), i - 1) == disable_corrector_.end() &&
            last_sample_.defined();
        Tensor converted = convert(mo, sample, i);
        if (use_corrector) sample = corrector(converted, last_sample_, sample, this_order_, i);
        for (int64_t k = 0; k + 1 < order_; ++k) outputs_[size_t(k)] = outputs_[size_t(k + 1)];
        outputs_.back() = converted;
        const int64_t N = int64_t(timesteps_.size());
        int64_t this_order = lower_order_final_ ? std::min(order_, N - i) : order_;
        this_order_ = std::min(this_order, lower_order_nums_ + 1);
        last_sample_ = sample;
        Tensor prev = predictor(sample, this_order_, i);
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
        return convert_model_output(m, s, sig(i), common_.prediction_type, predict_x0_);
    }

    // The B(h) coefficient system shared by UniP and UniC: rks (with the trailing 1), R rows rks^(j-1), b.
    struct Coeffs {
        float hh, h_phi_1, B_h;
        std::vector<float> rks;
        std::vector<std::vector<float>> R;
        std::vector<float> b;
    };
    Coeffs coeffs(float h, std::vector<float> rks, int64_t order) const {
        Coeffs c;
        c.hh = predict_x0_ ? -h : h;
        c.h_phi_1 = std::expm1(c.hh);
        float h_phi_k = c.h_phi_1 / c.hh - 1.0f;
        double factorial = 1;
        c.B_h = solver_type_ == "bh1" ? c.hh : std::expm1(c.hh);
        rks.push_back(1.0f);
        c.rks = rks;
        for (int64_t j = 1; j <= order; ++j) {
            std::vector<float> row;
            for (float r : rks) {
                float p = 1.0f;
                for (int64_t e = 0; e < j - 1; ++e) p = e == 0 ? r : p * r;
                row.push_back(p);
            }
            c.R.push_back(row);
            c.b.push_back(h_phi_k * float(factorial) / c.B_h);
            factorial *= double(j + 1);
            h_phi_k = h_phi_k / c.hh - float(1.0 / factorial);
        }
        return c;
    }

    // multistep_uni_p_bh_update
    Tensor predictor(const Tensor& x, int64_t order, int64_t i) const {
        const size_t L = outputs_.size();
        const float* m0 = outputs_[L - 1].data<float>();
        const AlphaSigma t = alpha_sigma(sig(i + 1)), s0 = alpha_sigma(sig(i));
        const float l0 = lambda_of(s0);
        const float h = lambda_of(t) - l0;
        std::vector<float> rks;
        std::vector<Tensor> D1s;
        for (int64_t k = 1; k < order; ++k) {
            const float* mi = outputs_[L - 1 - size_t(k)].data<float>();
            const float rk = (lambda_of(alpha_sigma(sig(i - k))) - l0) / h;
            rks.push_back(rk);
            D1s.push_back(generate(x.shape(), [&](int64_t e) { return (mi[e] - m0[e]) / rk; }));
        }
        Coeffs c = coeffs(h, rks, order);
        std::vector<float> rhos;
        if (!D1s.empty()) {
            if (order == 2) {
                rhos = {0.5f};
            } else {
                std::vector<std::vector<float>> R(size_t(order - 1));
                for (int64_t r = 0; r < order - 1; ++r) R[size_t(r)].assign(c.R[size_t(r)].begin(), c.R[size_t(r)].end() - 1);
                rhos = solve_f32(R, std::vector<float>(c.b.begin(), c.b.end() - 1));
            }
        }
        const float* xp = x.data<float>();
        const float A = predict_x0_ ? t.sigma / s0.sigma : t.alpha / s0.alpha;
        const float B = predict_x0_ ? t.alpha * c.h_phi_1 : t.sigma * c.h_phi_1;
        const float C = predict_x0_ ? t.alpha * c.B_h : t.sigma * c.B_h;
        std::vector<const float*> d;
        for (const Tensor& t1 : D1s) d.push_back(t1.data<float>());
        return generate(x.shape(), [&](int64_t e) {
            const float x_t_ = A * xp[e] - B * m0[e];
            if (d.empty()) return x_t_;
            float res = rhos[0] * d[0][e];
            for (size_t k = 1; k < d.size(); ++k) res = res + rhos[k] * d[k][e];
            return x_t_ - C * res;
        });
    }

    // multistep_uni_c_bh_update (before the history shift: outputs_.back() is the previous step's output)
    Tensor corrector(const Tensor& model_t, const Tensor& last_sample, const Tensor& this_sample, int64_t order,
                     int64_t i) const {
        const size_t L = outputs_.size();
        const float* m0 = outputs_[L - 1].data<float>();
        const AlphaSigma t = alpha_sigma(sig(i)), s0 = alpha_sigma(sig(i - 1));
        const float l0 = lambda_of(s0);
        const float h = lambda_of(t) - l0;
        std::vector<float> rks;
        std::vector<Tensor> D1s;
        for (int64_t k = 1; k < order; ++k) {
            const float* mi = outputs_[L - 1 - size_t(k)].data<float>();
            const float rk = (lambda_of(alpha_sigma(sig(i - (k + 1)))) - l0) / h;
            rks.push_back(rk);
            D1s.push_back(generate(this_sample.shape(), [&](int64_t e) { return (mi[e] - m0[e]) / rk; }));
        }
        Coeffs c = coeffs(h, rks, order);
        std::vector<float> rhos = order == 1 ? std::vector<float>{0.5f} : solve_f32(c.R, c.b);
        const float* xp = last_sample.data<float>();
        const float* mt = model_t.data<float>();
        const float A = predict_x0_ ? t.sigma / s0.sigma : t.alpha / s0.alpha;
        const float B = predict_x0_ ? t.alpha * c.h_phi_1 : t.sigma * c.h_phi_1;
        const float C = predict_x0_ ? t.alpha * c.B_h : t.sigma * c.B_h;
        std::vector<const float*> d;
        for (const Tensor& t1 : D1s) d.push_back(t1.data<float>());
        const float rlast = rhos.back();
        return generate(this_sample.shape(), [&](int64_t e) {
            const float x_t_ = A * xp[e] - B * m0[e];
            const float d1t = mt[e] - m0[e];
            float inner;
            if (d.empty()) {
                inner = rlast * d1t;
            } else {
                float res = rhos[0] * d[0][e];
                for (size_t k = 1; k < d.size(); ++k) res = res + rhos[k] * d[k][e];
                inner = res + rlast * d1t;
            }
            return x_t_ - C * inner;
        });
    }

    int64_t order_ = 2, this_order_ = 0, lower_order_nums_ = 0;
    bool predict_x0_ = true, lower_order_final_ = true, karras_ = false;
    std::string solver_type_, final_sigmas_type_;
    std::vector<int64_t> disable_corrector_;
    std::vector<Tensor> outputs_;
    Tensor last_sample_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("UniPCMultistepScheduler", UniPCMultistep);

}  // namespace sdxl::schedulers
