// What diffusers' KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler share: constructor defaults,
// the base sigma schedule (incl. Karras), the torch float32 helpers and the pair interleaving.
#pragma once

#include <cmath>
#include <vector>

#include "schedulers/k_sigmas.h"
#include "schedulers/simd_log.h"

namespace sdxl::schedulers::kdpm2 {

// torch lerp(a, b, 0.5) = b - (b - a) * 0.5 (the weight is not "small").
inline float lerp_half(float a, float b) { return b - (b - a) * 0.5f; }
// torch.Tensor.log on float32 CPU tensors (SLEEF Sleef_logf8_u10 in the AVX2 build).
inline float logf32(float x) { return simdlog::sleef_logf(x); }
// torch.Tensor.exp on float32 CPU tensors (SLEEF Sleef_expf8_u10 in the AVX2 build).
inline float expf32(float x) { return simdlog::sleef_expf(x); }

// cat([x[:1], x[1:].repeat_interleave(2), x[-1:]])
inline std::vector<float> interleave(const std::vector<float>& v) {
    std::vector<float> out(1, v[0]);
    for (size_t k = 1; k < v.size(); ++k) out.insert(out.end(), {v[k], v[k]});
    out.push_back(v.back());
    return out;
}

class Base : public Scheduler {
public:
    explicit Base(const api::SchedulerConfig& c) : Scheduler(c) {
        Common d;
        d.beta_start = 0.00085;
        d.beta_end = 0.012;
        d.beta_schedule = "linear";
        d.timestep_spacing = "linspace";
        d.steps_offset = 0;
        resolve_common(d);
        karras_ = cfg_bool(c.use_karras_sigmas, false);
        if (common_.prediction_type == "sample")
            fail(ErrorCode::UNSUPPORTED, c.class_name, ": prediction_type \"sample\" is not implemented");
    }

    int order() const override { return 2; }

protected:
    struct Schedule {
        std::vector<double> ts;        // the n base timesteps (float32 values, or Karras-mapped)
        std::vector<float> s;          // their sigmas with the final 0 appended (n + 1)
        std::vector<float> log_train;  // log of the training sigmas (numpy float32 log)
    };

    Schedule base_schedule(int64_t n) const {
        const std::vector<float> ts32 = ksig::spacing_timesteps_f32(common_.timestep_spacing, n,
                                                                    common_.num_train_timesteps,
                                                                    common_.steps_offset, config_.class_name);
        const std::vector<float> train = ksig::train_sigmas(alphas_cumprod_);
        Schedule out;
        out.log_train = ksig::log_f32(train);
        out.ts.assign(ts32.begin(), ts32.end());
        std::vector<double> sig = ksig::interp(out.ts, train);
        if (karras_) {
            sig = karras_sigmas(sig.back(), sig.front(), n);
            out.ts.clear();
            for (double s : sig) out.ts.push_back(std::nearbyint(ksig::sigma_to_t_np(s, out.log_train)));
        }
        out.s.assign(sig.size() + 1, 0.0f);
        for (size_t k = 0; k < sig.size(); ++k) out.s[k] = float(sig[k]);
        return out;
    }

    bool karras_ = false;
};

}  // namespace sdxl::schedulers::kdpm2
