// Shared helpers of the DDIM/DDPM/PNDM and DPM-Solver-family schedulers (ddim.cpp, ddpm.cpp, pndm.cpp,
// dpmsolver_multistep.cpp, dpmsolver_singlestep.cpp, unipc_multistep.cpp, deis_multistep.cpp).
// Scalars that diffusers holds as 0-dim torch float32 tensors are `float` here and every per-element update
// repeats diffusers' operation order in float (build without FMA contraction / fast-math).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "schedulers/scheduler.h"

namespace sdxl::schedulers::solver {

// The sample/model output as a contiguous F32 CPU tensor (a copy only when not contiguous).
inline Tensor f32_cpu(const Tensor& t, const std::string& who, const char* what) {
    if (!t.defined()) fail(ErrorCode::INVALID_ARGUMENT, who, ": ", what, " is undefined");
    if (t.dtype() != DType::F32 || t.device() != Device::CPU)
        fail(ErrorCode::INVALID_ARGUMENT, who, ": ", what, " must be a float32 CPU tensor");
    return t.contiguous();
}

inline void same_shape(const Tensor& a, const Tensor& b, const std::string& who) {
    if (a.shape() != b.shape())
        fail(ErrorCode::INVALID_ARGUMENT, who, ": shape mismatch ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
}

// out[i] = f(i) over a new tensor of `shape`.
template <typename F>
Tensor generate(const Shape& shape, F f) {
    Tensor out = Tensor::empty(shape, DType::F32);
    float* o = out.data<float>();
    const int64_t n = out.numel();
    for (int64_t i = 0; i < n; ++i) o[i] = f(i);
    return out;
}

// torch.randn(shape, generator) through the caller's NoiseFn, checked.
inline Tensor draw_noise(const NoiseFn& noise, const Shape& shape, const std::string& who) {
    if (!noise) fail(ErrorCode::INVALID_ARGUMENT, who, ": this step needs random noise but no generator was given");
    Tensor n = f32_cpu(noise(shape), who, "noise");
    if (n.shape() != shape) fail(ErrorCode::INTERNAL, who, ": noise function returned shape ", shape_str(n.shape()));
    return n;
}

// numpy.linspace(start, stop, n) in float64 (i * step + start, the last value exactly stop).
inline std::vector<double> linspace64(double start, double stop, int64_t n) {
    std::vector<double> out(size_t(std::max<int64_t>(n, 0)));
    if (n == 1) out[0] = start;
    if (n <= 1) return out;
    const double step = (stop - start) / double(n - 1);
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(i) * step + start;
    out.back() = stop;
    return out;
}

// numpy's round (half to even) on a float64.
inline double np_round(double v) { return std::nearbyint(v); }

// np.arange(start, stop, step) in float64 (start + i * delta).
inline std::vector<double> np_arange(double start, double stop, double step) {
    std::vector<double> out;
    const double len = std::ceil((stop - start) / step);
    if (!(len > 0)) return out;
    const double delta = (start + step) - start;
    for (int64_t i = 0; i < int64_t(len); ++i) out.push_back(start + double(i) * delta);
    return out;
}

// ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 as torch float32.
inline std::vector<float> train_sigmas(const std::vector<float>& alphas_cumprod) {
    std::vector<float> s(alphas_cumprod.size());
    for (size_t i = 0; i < s.size(); ++i) s[i] = std::sqrt((1.0f - alphas_cumprod[i]) / alphas_cumprod[i]);
    return s;
}

// np.log of the float32 sigma table (float32 results), widened for sigma_to_t.
inline std::vector<double> log_sigmas_f32(const std::vector<float>& sigmas) {
    std::vector<double> out(sigmas.size());
    for (size_t i = 0; i < sigmas.size(); ++i) out[i] = double(std::log(sigmas[i]));
    return out;
}

// _sigma_to_alpha_sigma_t on a float32 sigma: alpha = 1 / (sigma**2 + 1) ** 0.5, sigma_t = sigma * alpha.
struct AlphaSigma {
    float alpha, sigma;
};
inline AlphaSigma alpha_sigma(float sigma) {
    const float a = 1.0f / std::sqrt(sigma * sigma + 1.0f);
    return {a, sigma * a};
}
// torch.log(alpha_t) - torch.log(sigma_t)
inline float lambda_of(const AlphaSigma& v) { return std::log(v.alpha) - std::log(v.sigma); }

// Timesteps of DPMSolverMultistep / UniPC / DEIS (n + 1 points, the last dropped; "leading" therefore differs
// from DDIM's). `last_timestep` is num_train_timesteps minus the lambda clipping index; `leading_base` is what
// the class divides for "leading" (DPM-Solver: last_timestep, UniPC/DEIS: num_train_timesteps).
inline std::vector<double> dpm_timesteps(const std::string& spacing, int64_t n, int64_t num_train, int64_t steps_offset,
                                         int64_t last_timestep, int64_t leading_base, const std::string& who) {
    std::vector<double> ts;
    if (spacing == "linspace") {
        std::vector<double> l = linspace64(0.0, double(last_timestep - 1), n + 1);
        for (int64_t i = n; i >= 1; --i) ts.push_back(np_round(l[size_t(i)]));
    } else if (spacing == "leading") {
        const int64_t ratio = leading_base / (n + 1);
        for (int64_t i = n; i >= 1; --i) ts.push_back(double(i * ratio + steps_offset));
    } else if (spacing == "trailing") {
        const double ratio = double(num_train) / double(n);
        for (double v : np_arange(double(last_timestep), 0.0, -ratio)) ts.push_back(double(int64_t(np_round(v))) - 1.0);
    } else {
        fail(ErrorCode::UNSUPPORTED, who, ": timestep_spacing \"", spacing, "\"");
    }
    return ts;
}

// Timesteps of DDIM / DDPM (n points, descending): "leading" = arange(n) * (T // n) + offset, "trailing" =
// round(arange(T, 0, -T / n)) - 1, "linspace" = round(linspace(0, T - 1, n)).
inline std::vector<double> ddim_timesteps(const std::string& spacing, int64_t n, int64_t T, int64_t steps_offset,
                                          const std::string& who) {
    std::vector<double> ts;
    if (spacing == "linspace") {
        std::vector<double> l = linspace64(0.0, double(T - 1), n);
        for (int64_t i = n - 1; i >= 0; --i) ts.push_back(np_round(l[size_t(i)]));
    } else if (spacing == "leading") {
        const int64_t ratio = T / n;
        for (int64_t i = n - 1; i >= 0; --i) ts.push_back(double(i * ratio + steps_offset));
    } else if (spacing == "trailing") {
        for (double v : np_arange(double(T), 0.0, -(double(T) / double(n)))) ts.push_back(np_round(v) - 1.0);
    } else {
        fail(ErrorCode::UNSUPPORTED, who, ": timestep_spacing \"", spacing, "\"");
    }
    return ts;
}

// alphas_cumprod-based add_noise (DDIM, DDPM, PNDM, DEIS): sqrt(ac) * x + sqrt(1 - ac) * noise in float32.
inline Tensor add_noise_ac(const Tensor& original, const Tensor& noise, float alpha_cumprod, const std::string& who) {
    Tensor x = f32_cpu(original, who, "original"), n = f32_cpu(noise, who, "noise");
    same_shape(x, n, who);
    const float a = std::sqrt(alpha_cumprod), b = std::sqrt(1.0f - alpha_cumprod);
    const float* xp = x.data<float>();
    const float* np_ = n.data<float>();
    return generate(x.shape(), [&](int64_t k) { return a * xp[k] + b * np_[k]; });
}

// add_noise of the sigma-parameterised solvers (DPM-Solver, UniPC): alpha_t * x0 + sigma_t * noise in float32.
// diffusers' convert_model_output of the DPM-Solver family (DPMSolverMultistep/Singlestep, UniPC): the model
// output m at sample s and step sigma as the data prediction x0 (to_x0: dpmsolver++, UniPC predict_x0) or as
// the noise prediction (dpmsolver, UniPC bh without predict_x0), for prediction types epsilon / sample /
// v_prediction. float32 in torch's operation order.
inline Tensor convert_model_output(const Tensor& m, const Tensor& s, float sigma, const std::string& prediction_type,
                                   bool to_x0) {
    const float* mp = m.data<float>();
    const float* sp = s.data<float>();
    const std::string& pt = prediction_type;
    const AlphaSigma v = alpha_sigma(sigma);
    const float at = v.alpha, st = v.sigma;
    if (to_x0) {
        if (pt == "epsilon") return generate(m.shape(), [&](int64_t k) { return (sp[k] - st * mp[k]) / at; });
        if (pt == "sample") return generate(m.shape(), [&](int64_t k) { return mp[k]; });
        return generate(m.shape(), [&](int64_t k) { return at * sp[k] - st * mp[k]; });
    }
    if (pt == "epsilon") return generate(m.shape(), [&](int64_t k) { return mp[k]; });
    if (pt == "sample") return generate(m.shape(), [&](int64_t k) { return (sp[k] - at * mp[k]) / st; });
    return generate(m.shape(), [&](int64_t k) { return at * mp[k] + st * sp[k]; });
}

inline Tensor add_noise_alpha_sigma(const Tensor& original, const Tensor& noise, float sigma, const std::string& who) {
    Tensor x = f32_cpu(original, who, "original"), n = f32_cpu(noise, who, "noise");
    same_shape(x, n, who);
    const AlphaSigma v = alpha_sigma(sigma);
    const float* xp = x.data<float>();
    const float* np_ = n.data<float>();
    return generate(x.shape(), [&](int64_t k) { return v.alpha * xp[k] + v.sigma * np_[k]; });
}

// torch.linalg.solve for a small float32 system (LU with partial pivoting, as LAPACK sgesv).
inline std::vector<float> solve_f32(std::vector<std::vector<float>> a, std::vector<float> b) {
    const size_t n = b.size();
    std::vector<size_t> perm(n);
    for (size_t i = 0; i < n; ++i) perm[i] = i;
    for (size_t k = 0; k < n; ++k) {
        size_t p = k;
        for (size_t r = k + 1; r < n; ++r)
            if (std::fabs(a[r][k]) > std::fabs(a[p][k])) p = r;
        std::swap(a[p], a[k]);
        std::swap(b[p], b[k]);
        const float inv = 1.0f / a[k][k];
        for (size_t r = k + 1; r < n; ++r) {
            const float l = a[r][k] * inv;
            a[r][k] = l;
            for (size_t c = k + 1; c < n; ++c) a[r][c] = a[r][c] - l * a[k][c];
            b[r] = b[r] - l * b[k];
        }
    }
    std::vector<float> x(n);
    for (size_t k = n; k-- > 0;) {
        float s = b[k];
        for (size_t c = k + 1; c < n; ++c) s = s - a[k][c] * x[c];
        x[k] = s / a[k][k];
    }
    return x;
}

}  // namespace sdxl::schedulers::solver
