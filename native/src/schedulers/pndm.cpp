// PNDMScheduler (diffusers v0.31): pseudo Runge-Kutta warm-up (PRK) then linear multistep (PLMS); with
// skip_prk_steps the first step is repeated (Euler, then its average with the next output) instead of PRK.
// Stores no pred_original_sample.
#include <cmath>

#include "schedulers/scheduler.h"
#include "schedulers/solver_common.h"

namespace sdxl::schedulers {
namespace {

using namespace solver;

class PNDM : public Scheduler {
public:
    explicit PNDM(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.timestep_spacing = "leading";
        resolve_common(d);
        const std::string& name = config_.class_name;
        skip_prk_ = cfg_bool(c.skip_prk_steps, false);
        set_alpha_to_one_ = cfg_bool(c.set_alpha_to_one, false);
        final_alpha_cumprod_ = set_alpha_to_one_ ? 1.0f : alphas_cumprod_[0];
        if (common_.prediction_type == "sample")
            fail(ErrorCode::UNSUPPORTED, name, ": prediction_type sample (supported: epsilon, v_prediction)");
    }

    void set_timesteps(int64_t n) override {
        const std::string& name = config_.class_name;
        const int64_t T = common_.num_train_timesteps;
        if (n < 1 || n > T) fail(ErrorCode::INVALID_ARGUMENT, name, ": num_inference_steps ", n, " must be in [1, ", T, "]");
        if (!skip_prk_ && n < 4) fail(ErrorCode::INVALID_ARGUMENT, name, ": PRK steps need num_inference_steps >= 4");
        num_inference_steps_ = n;
        // _timesteps ascending
        std::vector<int64_t> base;
        const std::string& sp = common_.timestep_spacing;
        if (sp == "linspace") {
            for (double v : linspace64(0.0, double(T - 1), n)) base.push_back(int64_t(np_round(v)));
        } else if (sp == "leading") {
            for (int64_t i = 0; i < n; ++i) base.push_back(i * (T / n) + common_.steps_offset);
        } else {
            std::vector<double> a = np_arange(double(T), 0.0, -(double(T) / double(n)));
            for (size_t k = a.size(); k-- > 0;) base.push_back(int64_t(np_round(a[k])) - 1);
        }
        prk_.clear();
        std::vector<int64_t> plms;
        if (skip_prk_) {
            // concatenate([_t[:-1], _t[-2:-1], _t[-1:]])[::-1]
            std::vector<int64_t> cat(base.begin(), base.end() - 1);
            if (base.size() >= 2) cat.push_back(base[base.size() - 2]);
            cat.push_back(base.back());
            plms.assign(cat.rbegin(), cat.rend());
        } else {
            // prk = (_t[-4:].repeat(2) + tile([0, T // n // 2], 4))[:-1].repeat(2)[1:-1][::-1]
            std::vector<int64_t> r;
            const int64_t half = T / n / 2;
            for (size_t k = base.size() - 4; k < base.size(); ++k) {
                r.push_back(base[k]);
                r.push_back(base[k] + half);
            }
            r.pop_back();
            std::vector<int64_t> rr;
            for (int64_t v : r) {
                rr.push_back(v);
                rr.push_back(v);
            }
            std::vector<int64_t> mid(rr.begin() + 1, rr.end() - 1);
            prk_.assign(mid.rbegin(), mid.rend());
            plms.assign(base.rbegin() + 3, base.rend());  // _t[:-3][::-1]
        }
        timesteps_.clear();
        for (int64_t v : prk_) timesteps_.push_back(double(v));
        for (int64_t v : plms) timesteps_.push_back(double(v));
        for (double t : timesteps_)
            if (t < 0 || t >= double(T))
                fail(ErrorCode::INVALID_ARGUMENT, name, ": timestep ", t, " is outside the training range (steps_offset?)");
        ets_.clear();
        counter_ = 0;
        cur_model_output_ = Tensor();
        cur_sample_ = Tensor();
    }

    StepResult step(const Tensor& model_output_in, int64_t i, const Tensor& sample_in, const NoiseFn&) override {
        check_step_index(i);
        const std::string& name = config_.class_name;
        Tensor mo = f32_cpu(model_output_in, name, "model_output");
        Tensor sa = f32_cpu(sample_in, name, "sample");
        same_shape(mo, sa, name);
        const int64_t t = int64_t(timesteps_[size_t(i)]);
        if (counter_ < int64_t(prk_.size()) && !skip_prk_) return {step_prk(mo, t, sa), Tensor()};
        return {step_plms(mo, t, sa), Tensor()};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return add_noise_ac(original, noise, alphas_cumprod_[size_t(timesteps_[size_t(i)])], config_.class_name);
    }

private:
    // out = a * x (+ b * y): helpers for the PRK / PLMS combinations (float32 per element, diffusers' order)
    static Tensor lin(const Tensor& x, float a) {
        const float* p = x.data<float>();
        return generate(x.shape(), [&](int64_t k) { return a * p[k]; });
    }

    Tensor step_prk(const Tensor& mo, int64_t timestep, const Tensor& sample) {
        const int64_t T = common_.num_train_timesteps;
        const int64_t diff_to_prev = (counter_ % 2) ? 0 : T / num_inference_steps_ / 2;
        const int64_t prev_t = timestep - diff_to_prev;
        const int64_t t = prk_[size_t(counter_ / 4 * 4)];
        Tensor model_output = mo;
        const float sixth = float(1.0 / 6.0), third = float(1.0 / 3.0);
        auto accumulate = [&](float w) {
            Tensor add = lin(mo, w);
            if (!cur_model_output_.defined()) {
                cur_model_output_ = add;  // 0 + w * m
                return;
            }
            const float* c = cur_model_output_.data<float>();
            const float* a = add.data<float>();
            cur_model_output_ = generate(mo.shape(), [&](int64_t k) { return c[k] + a[k]; });
        };
        if (counter_ % 4 == 0) {
            accumulate(sixth);
            ets_.push_back(mo);
            cur_sample_ = sample;
        } else if ((counter_ - 1) % 4 == 0 || (counter_ - 2) % 4 == 0) {
            accumulate(third);
        } else {
            const float* m = mo.data<float>();
            if (cur_model_output_.defined()) {
                const float* c = cur_model_output_.data<float>();
                model_output = generate(mo.shape(), [&](int64_t k) { return c[k] + sixth * m[k]; });
            } else {
                model_output = lin(mo, sixth);
            }
            cur_model_output_ = Tensor();
        }
        const Tensor& cs = cur_sample_.defined() ? cur_sample_ : sample;
        Tensor prev = prev_sample(cs, t, prev_t, model_output);
        ++counter_;
        return prev;
    }

    Tensor step_plms(const Tensor& mo, int64_t timestep, const Tensor& sample_in) {
        const std::string& name = config_.class_name;
        if (!skip_prk_ && ets_.size() < 3)
            fail(ErrorCode::INVALID_ARGUMENT, name, ": PLMS needs the PRK warm-up steps first");
        const int64_t ratio = common_.num_train_timesteps / num_inference_steps_;
        int64_t t = timestep, prev_t = timestep - ratio;
        if (counter_ != 1) {
            if (ets_.size() > 3) ets_.erase(ets_.begin(), ets_.end() - 3);
            ets_.push_back(mo);
        } else {
            prev_t = timestep;
            t = timestep + ratio;
        }
        Tensor sample = sample_in;
        Tensor model_output;
        const size_t L = ets_.size();
        const Shape& sh = mo.shape();
        if (L == 1 && counter_ == 0) {
            model_output = mo;
            cur_sample_ = sample;
        } else if (L == 1 && counter_ == 1) {
            const float* m = mo.data<float>();
            const float* e = ets_.back().data<float>();
            model_output = generate(sh, [&](int64_t k) { return (m[k] + e[k]) / 2.0f; });
            if (!cur_sample_.defined()) fail(ErrorCode::INVALID_ARGUMENT, name, ": PLMS state lost (step order)");
            sample = cur_sample_;
            cur_sample_ = Tensor();
        } else if (L == 2) {
            const float* e1 = ets_[L - 1].data<float>();
            const float* e2 = ets_[L - 2].data<float>();
            model_output = generate(sh, [&](int64_t k) { return (3.0f * e1[k] - e2[k]) / 2.0f; });
        } else if (L == 3) {
            const float* e1 = ets_[L - 1].data<float>();
            const float* e2 = ets_[L - 2].data<float>();
            const float* e3 = ets_[L - 3].data<float>();
            model_output =
                generate(sh, [&](int64_t k) { return (23.0f * e1[k] - 16.0f * e2[k] + 5.0f * e3[k]) / 12.0f; });
        } else {
            const float* e1 = ets_[L - 1].data<float>();
            const float* e2 = ets_[L - 2].data<float>();
            const float* e3 = ets_[L - 3].data<float>();
            const float* e4 = ets_[L - 4].data<float>();
            const float w = float(1.0 / 24.0);
            model_output = generate(sh, [&](int64_t k) {
                return w * (55.0f * e1[k] - 59.0f * e2[k] + 37.0f * e3[k] - 9.0f * e4[k]);
            });
        }
        Tensor prev = prev_sample(sample, t, prev_t, model_output);
        ++counter_;
        return prev;
    }

    // _get_prev_sample: formula (9) of the PNDM paper, float32 scalars.
    Tensor prev_sample(const Tensor& sample, int64_t t, int64_t prev_t, const Tensor& model_output_in) const {
        const int64_t T = common_.num_train_timesteps;
        if (t < 0 || t >= T || prev_t >= T)
            fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": timestep ", t, " / ", prev_t, " out of range");
        const float a_t = alphas_cumprod_[size_t(t)];
        const float a_prev = prev_t >= 0 ? alphas_cumprod_[size_t(prev_t)] : final_alpha_cumprod_;
        const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
        const float* s = sample.data<float>();
        Tensor model_output = model_output_in;
        if (common_.prediction_type == "v_prediction") {
            const float* m = model_output_in.data<float>();
            const float ca = std::sqrt(a_t), cb = std::sqrt(b_t);
            model_output = generate(sample.shape(), [&](int64_t k) { return ca * m[k] + cb * s[k]; });
        }
        const float sample_coeff = std::sqrt(a_prev / a_t);
        const float denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
        const float diff = a_prev - a_t;
        const float* m = model_output.data<float>();
        return generate(sample.shape(), [&](int64_t k) { return sample_coeff * s[k] - diff * m[k] / denom; });
    }

    bool skip_prk_ = false, set_alpha_to_one_ = false;
    float final_alpha_cumprod_ = 1.0f;
    int64_t num_inference_steps_ = 0, counter_ = 0;
    std::vector<int64_t> prk_;
    std::vector<Tensor> ets_;
    Tensor cur_model_output_, cur_sample_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("PNDMScheduler", PNDM);

}  // namespace sdxl::schedulers
