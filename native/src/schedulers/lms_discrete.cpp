// diffusers v0.31 LMSDiscreteScheduler (k-diffusion linear multistep, order 4 = step()'s default).
// The coefficients are scipy.integrate.quad(lms_derivative, sigma_i, sigma_{i+1}, epsrel=1e-4) of a Lagrange
// basis polynomial (degree <= 3). QUADPACK's first 21-point Gauss-Kronrod rule already meets that tolerance for
// such polynomials, so quad returns exactly that rule's sum; we evaluate the same rule, with the integrand in
// float32 as diffusers evaluates it (tau - sigma[k] etc. on float32 tensors).
#include <cmath>
#include <deque>

#include "schedulers/k_sigmas.h"

namespace sdxl::schedulers {
namespace {

// QUADPACK dqk21 abscissae (xgk) and Kronrod weights (wgk); xgk[1], xgk[3], ... are the 10-point Gauss nodes.
constexpr double kXgk[11] = {0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
                             0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
                             0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
                             0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
                             0.294392862701460198131126603103866, 0.148874338981631210884826001129720,
                             0.0};
constexpr double kWgk[11] = {0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
                             0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
                             0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
                             0.123491976262065851077958109831074, 0.134709217311473325928054001771707,
                             0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
                             0.149445554002916905664936468389821};

template <typename F>
double gauss_kronrod21(F f, double a, double b) {
    const double centr = 0.5 * (a + b), hlgth = 0.5 * (b - a);
    double resk = f(centr) * kWgk[10];
    for (int j = 1; j <= 9; j += 2) {  // Gauss nodes first, as dqk21 sums them
        const double absc = hlgth * kXgk[j];
        resk += kWgk[j] * (f(centr - absc) + f(centr + absc));
    }
    for (int j = 0; j <= 8; j += 2) {
        const double absc = hlgth * kXgk[j];
        resk += kWgk[j] * (f(centr - absc) + f(centr + absc));
    }
    return resk * hlgth;
}

class LMSDiscrete : public Scheduler {
public:
    explicit LMSDiscrete(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.beta_start = 0.0001;
        d.beta_end = 0.02;
        d.beta_schedule = "linear";
        d.timestep_spacing = "linspace";
        d.steps_offset = 0;
        resolve_common(d);
        karras_ = cfg_bool(c.use_karras_sigmas, false);
    }

    void set_timesteps(int64_t n) override {
        const std::vector<float> ts32 = ksig::spacing_timesteps_f32(common_.timestep_spacing, n,
                                                                    common_.num_train_timesteps,
                                                                    common_.steps_offset, config_.class_name);
        const std::vector<float> train = ksig::train_sigmas(alphas_cumprod_);
        std::vector<double> ts(ts32.begin(), ts32.end());
        std::vector<double> sig = ksig::interp(ts, train);
        if (karras_) {
            const std::vector<float> log_train = ksig::log_f32(train);
            sig = karras_sigmas(sig.back(), sig.front(), n);
            ts.clear();
            for (double s : sig) ts.push_back(ksig::sigma_to_t_np(s, log_train));
        }
        sig32_.clear();
        for (double s : sig) sig32_.push_back(float(s));
        sig32_.push_back(0.0f);
        sigmas_.assign(sig32_.begin(), sig32_.end());
        timesteps_.clear();
        for (double t : ts) timesteps_.push_back(double(float(t)));
        derivatives_.clear();
    }

    double init_noise_sigma() const override { return ksig::init_noise_sigma(sig32_, common_.timestep_spacing); }

    Tensor scale_model_input(const Tensor& sample, int64_t i) override {
        check_step_index(i);
        return ksig::scale_by_sigma(sample, sig32_[size_t(i)]);
    }

    StepResult step(const Tensor& model_output, int64_t i, const Tensor& sample, const NoiseFn&) override {
        check_step_index(i);
        const int64_t kOrder = 4;
        const float sigma = sig32_[size_t(i)];
        Tensor x0 = ksig::predict_x0(model_output, sample, sigma, common_.prediction_type, true, config_.class_name);
        const Tensor x = sample.contiguous();
        const float* px = x.data<float>();
        const float* p0 = x0.data<float>();
        const int64_t m = x.numel();
        Tensor deriv = ksig::new_like(x);
        float* pd = deriv.data<float>();
        for (int64_t k = 0; k < m; ++k) pd[k] = (px[k] - p0[k]) / sigma;
        derivatives_.push_back(deriv);
        if (int64_t(derivatives_.size()) > kOrder) derivatives_.pop_front();
        const int64_t order = std::min<int64_t>(i + 1, kOrder);
        // coefficient c pairs with derivatives_[size - 1 - c] (reversed); fewer stored derivatives (a
        // scheduler started mid-way) would make diffusers' zip stop early: same here.
        std::vector<float> sum(size_t(m), 0.0f);
        const int64_t avail = int64_t(derivatives_.size());
        for (int64_t c = 0; c < order && c < avail; ++c) {
            const float coeff = float(lms_coefficient(order, i, c));
            const float* d = derivatives_[size_t(avail - 1 - c)].data<float>();
            for (int64_t k = 0; k < m; ++k) sum[size_t(k)] = sum[size_t(k)] + coeff * d[k];
        }
        Tensor prev = ksig::new_like(x);
        float* po = prev.data<float>();
        for (int64_t k = 0; k < m; ++k) po[k] = px[k] + sum[size_t(k)];
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return ksig::add_noise_sigma(original, noise, sig32_[size_t(i)], config_.class_name);
    }

private:
    double lms_coefficient(int64_t order, int64_t t, int64_t current) const {
        auto s = [&](int64_t k) { return sig32_[size_t(k)]; };
        auto f = [&](double tau) -> double {
            if (order == 1) return 1.0;  // the product stays the Python float 1.0
            const float tau32 = float(tau);
            float prod = 1.0f;
            for (int64_t k = 0; k < order; ++k) {
                if (k == current) continue;
                const float q = (tau32 - s(t - k)) / (s(t - current) - s(t - k));
                prod = prod * q;
            }
            return double(prod);
        };
        return gauss_kronrod21(f, double(s(t)), double(s(t + 1)));
    }

    bool karras_ = false;
    std::vector<float> sig32_;
    std::deque<Tensor> derivatives_;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("LMSDiscreteScheduler", LMSDiscrete);

}  // namespace sdxl::schedulers
