// diffusers v0.31 DPMSolverSDEScheduler (k-diffusion "DPM++ SDE", order 2): timesteps [t0, tm0, t1, tm1, t1 ...]
// with tm the timestep of each step's log-midpoint sigma (float64, not cast to float32), sigmas
// [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0], two evaluations per step.
//
// Noise, with noise_sampler_seed set: diffusers' BrownianTreeNoiseSampler, reproduced value for value.
// BatchedBrownianTree(x, sigma_min, sigma_max, seed) builds torchsde.BrownianTree(t0, zeros_like(x), t1,
// entropy=seed) over [min positive sigma, max sigma] (float32 sigmas as Python floats) on the first step;
// each stochastic step asks noise(sigma_from, sigma_to) = tree(sort(from, to)) * (sign product) /
// sqrt(|to - from|) (float32). The tree itself (SeedSequence-seeded torch generators on a halfway binary
// tree, tol 1e-6, pool_size 24) is schedulers/brownian_tree.{h,cpp}. Checked free-running against diffusers
// 0.31 + torchsde 0.2.6 by SchedulerReferenceTest (dpmpp_sde_*).
//
// Without noise_sampler_seed, diffusers seeds the tree with torch.randint(0, 2**63 - 1, []) from torch's
// GLOBAL generator, which no caller can reproduce; then sdxl4j uses an exact-in-law substitute: a Brownian
// motion W(sigma) sampled lazily by Brownian-bridge refinement (W(sigma_min) = 0, W(sigma_max) ~ N(0,
// sigma_max - sigma_min), each new point conditioned on its two sampled neighbours), with the N(0, 1) draws
// taken from the step's NoiseFn, returning (W(b) - W(a)) / sqrt(|b - a|) like the sampler, so the two halves
// of a step see consistently correlated noise. Everything else (schedule, midpoint sigmas, the float32
// update) follows diffusers operation by operation.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <utility>

#include "schedulers/brownian_tree.h"
#include "schedulers/k_sigmas.h"
#include "schedulers/simd_log.h"

namespace sdxl::schedulers {
namespace {

// torch's float32 log / exp on CPU tensors (here 0-dim) are SLEEF's u10 kernels, not correctly rounded; one ulp
// of sigma_fn(t) moves the noise's sqrt(|dt|) and the update, so they are emulated (simd_log.h). expm1
// (Sleef_expm1f8_u10) is taken as the correctly rounded value, which gives the same float in every step of
// the reference cases.
inline float logf32(float x) { return simdlog::sleef_logf(x); }
inline float expf32(float x) { return simdlog::sleef_expf(x); }
inline float expm1f32(float x) { return float(std::expm1(double(x))); }

class DPMSolverSDE : public Scheduler {
public:
    explicit DPMSolverSDE(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.beta_start = 0.00085;
        d.beta_end = 0.012;
        d.beta_schedule = "linear";
        d.timestep_spacing = "linspace";
        d.steps_offset = 0;
        resolve_common(d);
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        seed_ = c.noise_sampler_seed;  // < 0: unset
        if (common_.prediction_type == "sample")
            fail(ErrorCode::UNSUPPORTED, c.class_name, ": prediction_type \"sample\" is not implemented");
    }

    int order() const override { return 2; }

    void set_timesteps(int64_t n) override {
        std::vector<double> ts = ksig::spacing_timesteps_f64(common_.timestep_spacing, n,
                                                             common_.num_train_timesteps, common_.steps_offset,
                                                             config_.class_name);
        const std::vector<float> train = ksig::train_sigmas(alphas_cumprod_);
        const std::vector<float> log_train = ksig::log_f32(train);
        std::vector<double> sig = ksig::interp(ts, train);
        if (karras_) {
            sig = karras_sigmas(sig.back(), sig.front(), n);
            ts.clear();
            for (double s : sig) ts.push_back(ksig::sigma_to_t_np(s, log_train));
        }
        // _second_order_timesteps: float64 midpoints in t = -log(sigma)
        std::vector<double> second;
        for (size_t k = 0; k + 1 < sig.size(); ++k) {
            const double t0 = -std::log(sig[k]), t1 = -std::log(sig[k + 1]);
            const double tp = t0 + (t1 - t0) * 0.5;
            second.push_back(ksig::sigma_to_t_np(std::exp(-tp), log_train));
        }
        std::vector<float> s32;
        for (double s : sig) s32.push_back(float(s));
        s32.push_back(0.0f);
        sig32_.assign(1, s32[0]);
        for (size_t k = 1; k + 1 < s32.size(); ++k) sig32_.insert(sig32_.end(), {s32[k], s32[k]});
        sig32_.push_back(s32.back());
        sigmas_.assign(sig32_.begin(), sig32_.end());
        timesteps_.assign(1, ts[0]);
        for (size_t k = 1; k < ts.size(); ++k) {
            timesteps_.push_back(second[k - 1]);
            timesteps_.push_back(ts[k]);
        }
        stored_ = Tensor();
        mid_point_sigma_ = 0.0f;
        path_.clear();
        tree_.reset();
    }

    double init_noise_sigma() const override { return ksig::init_noise_sigma(sig32_, common_.timestep_spacing); }

    Tensor scale_model_input(const Tensor& sample, int64_t i) override {
        check_step_index(i);
        return ksig::scale_by_sigma(sample, stored_.defined() ? mid_point_sigma_ : sig32_[size_t(i)]);
    }

    StepResult step(const Tensor& model_output, int64_t i, const Tensor& sample, const NoiseFn& noise) override {
        check_step_index(i);
        const bool first = !stored_.defined();
        if (!first && i < 1) fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": bad step index");
        const size_t u = size_t(i);
        const float sigma = first ? sig32_[u] : sig32_[u - 1];
        const float sigma_next = first ? sig32_[u + 1] : sig32_[u];
        const float t = -logf32(sigma);
        float t_next = -logf32(sigma_next);
        const float delta = t_next - t;
        const float t_proposed = t + delta * 0.5f;
        const float sigma_input = first ? sigma : expf32(-t_proposed);
        Tensor x0 = ksig::predict_x0(model_output, sample, sigma_input, common_.prediction_type, false,
                                     config_.class_name);
        const Tensor x = sample.contiguous();
        const float* px = x.data<float>();
        const float* p0 = x0.data<float>();
        const int64_t m = x.numel();
        Tensor prev = ksig::new_like(x);
        float* po = prev.data<float>();
        if (sigma_next == 0.0f) {
            const float dt = sigma_next - sigma;
            for (int64_t k = 0; k < m; ++k) po[k] = px[k] + ((px[k] - p0[k]) / sigma) * dt;
            return {prev, x0};
        }
        if (first) t_next = t_proposed;
        const float* base = first ? px : stored_.data<float>();
        const float sigma_from = expf32(-t), sigma_to = expf32(-t_next);
        const float st2 = sigma_to * sigma_to, sf2 = sigma_from * sigma_from;
        const float sigma_up = std::min(sigma_to, std::sqrt(st2 * (sf2 - st2) / sf2));
        const float sigma_down = std::sqrt(st2 - sigma_up * sigma_up);
        const float ancestral_t = -logf32(sigma_down);
        const float ratio = expf32(-ancestral_t) / expf32(-t);
        const float em1 = expm1f32(t - ancestral_t);
        const std::vector<float> z = brownian_noise(x.shape(), sigma_from, sigma_to, noise);
        for (int64_t k = 0; k < m; ++k) {
            const float p = ratio * base[k] - em1 * p0[k];
            po[k] = p + (z[size_t(k)] * 1.0f) * sigma_up;  // s_noise = 1
        }
        if (first) {
            stored_ = x.clone();
            mid_point_sigma_ = sigma_to;
        } else {
            stored_ = Tensor();
            mid_point_sigma_ = 0.0f;
        }
        return {prev, x0};
    }

    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t i) const override {
        check_step_index(i);
        return ksig::add_noise_sigma(original, noise, sig32_[size_t(i)], config_.class_name);
    }

private:
    std::vector<float> draw(const Shape& shape, const NoiseFn& noise) {
        if (!noise)
            fail(ErrorCode::INVALID_ARGUMENT, config_.class_name,
                 ": step needs noise_sampler_seed or a noise generator");
        const Tensor z = noise(shape).contiguous();
        if (z.dtype() != DType::F32 || shape_numel(z.shape()) != shape_numel(shape))
            fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": noise generator returned ", z.describe());
        const float* p = z.data<float>();
        return std::vector<float>(p, p + z.numel());
    }

    // W(s) of the substitute Brownian motion, sampled on demand.
    const std::vector<double>& point(double s, const Shape& shape, const NoiseFn& noise) {
        auto it = path_.find(s);
        if (it != path_.end()) return it->second;
        auto hi = path_.upper_bound(s);
        if (hi == path_.begin() || hi == path_.end())
            fail(ErrorCode::INTERNAL, config_.class_name, ": noise query outside [sigma_min, sigma_max]");
        auto lo = std::prev(hi);
        const double l = lo->first, r = hi->first;
        const double a = (s - l) / (r - l), sd = std::sqrt((s - l) * (r - s) / (r - l));
        const std::vector<float> z = draw(shape, noise);
        std::vector<double> w(z.size());
        for (size_t k = 0; k < z.size(); ++k)
            w[k] = lo->second[k] + a * (hi->second[k] - lo->second[k]) + sd * double(z[k]);
        return path_.emplace(s, std::move(w)).first->second;
    }

    // BatchedBrownianTree.sort: (a, b, 1) if a < b else (b, a, -1)
    static void sort_pair(float& a, float& b, int& sign) {
        if (a < b) {
            sign = 1;
        } else {
            std::swap(a, b);
            sign = -1;
        }
    }

    // BrownianTreeNoiseSampler(sample, sigma_min, sigma_max, noise_sampler_seed)(from, to), float32.
    std::vector<float> tree_noise(const Shape& shape, float from, float to) {
        if (!tree_) {
            float smin = 0.0f, smax = 0.0f;
            bool any = false;
            for (float s : sig32_) {  // sigmas[sigmas > 0].min(), sigmas.max()
                if (s > 0 && (!any || s < smin)) smin = s, any = true;
                smax = std::max(smax, s);
            }
            sort_pair(smin, smax, tree_sign_);
            tree_ = std::make_unique<TorchsdeBrownianTree>(double(smin), double(smax), shape, uint64_t(seed_));
        }
        if (shape_numel(shape) != tree_->numel())
            fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": sample size changed between steps");
        float a = from, b = to;
        int sign = 1;
        sort_pair(a, b, sign);
        std::vector<float> w = tree_->increment(double(a), double(b));
        const float s = float(tree_sign_ * sign);
        const float d = std::sqrt(std::fabs(to - from));  // (t1 - t0).abs().sqrt()
        for (float& v : w) v = (v * s) / d;
        return w;
    }

    std::vector<float> brownian_noise(const Shape& shape, float from, float to, const NoiseFn& noise) {
        if (seed_ >= 0) return tree_noise(shape, from, to);
        if (path_.empty()) {
            float smin = 0.0f, smax = 0.0f;
            bool any = false;
            for (float s : sig32_) {
                if (s > 0 && (!any || s < smin)) smin = s, any = true;
                smax = std::max(smax, s);
            }
            const size_t n = size_t(shape_numel(shape));
            const std::vector<float> z = draw(shape, noise);
            std::vector<double> top(n);
            for (size_t k = 0; k < n; ++k) top[k] = std::sqrt(double(smax) - double(smin)) * double(z[k]);
            path_.emplace(double(smin), std::vector<double>(n, 0.0));
            path_.emplace(double(smax), std::move(top));
        }
        const double a = std::min(std::max(double(from), path_.begin()->first), path_.rbegin()->first);
        const double b = std::min(std::max(double(to), path_.begin()->first), path_.rbegin()->first);
        const std::vector<double> wa = point(a, shape, noise);
        const std::vector<double>& wb = point(b, shape, noise);
        std::vector<float> out(wa.size());
        const double scale = std::sqrt(std::fabs(b - a));
        for (size_t k = 0; k < wa.size(); ++k) out[k] = scale > 0 ? float((wb[k] - wa[k]) / scale) : 0.0f;
        return out;
    }

    bool karras_ = false;
    int64_t seed_ = -1;
    std::vector<float> sig32_;
    Tensor stored_;
    float mid_point_sigma_ = 0.0f;
    std::map<double, std::vector<double>> path_;    // substitute (no noise_sampler_seed)
    std::unique_ptr<TorchsdeBrownianTree> tree_;    // noise_sampler_seed set
    int tree_sign_ = 1;
};

}  // namespace

SDXL_REGISTER_SCHEDULER("DPMSolverSDEScheduler", DPMSolverSDE);

}  // namespace sdxl::schedulers
