#include "schedulers/k_sigmas.h"
#include "schedulers/simd_log.h"

#include <algorithm>
#include <cmath>

namespace sdxl::schedulers::ksig {

namespace {

// numpy.arange(start, stop, step) in float64: length ceil((stop - start) / step), values start + i * delta with
// delta = (start + step) - start (numpy fills from the first two values).
std::vector<double> np_arange(double start, double stop, double step) {
    const double len_d = std::ceil((stop - start) / step);
    const int64_t len = len_d > 0 ? int64_t(len_d) : 0;
    std::vector<double> out(static_cast<size_t>(len));
    if (len == 0) return out;
    out[0] = start;
    if (len > 1) {
        const double delta = (start + step) - start;
        for (int64_t i = 1; i < len; ++i) out[size_t(i)] = start + double(i) * delta;
    }
    return out;
}

std::vector<double> spacing_f64(const std::string& spacing, int64_t n, int64_t num_train, const std::string& who) {
    if (n < 1 || n > num_train)
        fail(ErrorCode::INVALID_ARGUMENT, who, ": num_inference_steps ", n, " must be in [1, ", num_train, "]");
    std::vector<double> t;
    if (spacing == "linspace") {
        // np.linspace(0, N - 1, n)[::-1]
        t.resize(size_t(n));
        const double stop = double(num_train - 1);
        if (n == 1) {
            t[0] = 0.0;
        } else {
            const double step = stop / double(n - 1);
            for (int64_t i = 0; i < n; ++i) t[size_t(i)] = double(i) * step;
            t.back() = stop;
        }
        std::reverse(t.begin(), t.end());
    } else if (spacing == "leading") {
        const int64_t ratio = num_train / n;
        t.resize(size_t(n));
        for (int64_t i = 0; i < n; ++i) t[size_t(n - 1 - i)] = std::nearbyint(double(i * ratio));
    } else if (spacing == "trailing") {
        const double ratio = double(num_train) / double(n);
        t = np_arange(double(num_train), 0.0, -ratio);
        for (double& v : t) v = std::nearbyint(v);  // np.round: half to even (default rounding mode)
    } else {
        fail(ErrorCode::UNSUPPORTED, who, ": timestep_spacing \"", spacing, "\"");
    }
    return t;
}

}  // namespace

std::vector<float> spacing_timesteps_f32(const std::string& spacing, int64_t n, int64_t num_train, int64_t steps_offset,
                                         const std::string& who) {
    std::vector<double> t = spacing_f64(spacing, n, num_train, who);
    std::vector<float> out(t.size());
    for (size_t i = 0; i < t.size(); ++i) out[i] = float(t[i]);
    if (spacing == "leading")
        for (float& v : out) v = v + float(steps_offset);
    else if (spacing == "trailing")
        for (float& v : out) v = v - 1.0f;
    return out;
}

std::vector<double> spacing_timesteps_f64(const std::string& spacing, int64_t n, int64_t num_train,
                                          int64_t steps_offset, const std::string& who) {
    std::vector<double> t = spacing_f64(spacing, n, num_train, who);
    if (spacing == "leading")
        for (double& v : t) v += double(steps_offset);
    else if (spacing == "trailing")
        for (double& v : t) v -= 1.0;
    return t;
}

std::vector<float> train_sigmas(const std::vector<float>& ac) {
    std::vector<float> s(ac.size());
    for (size_t i = 0; i < ac.size(); ++i) s[i] = std::sqrt((1.0f - ac[i]) / ac[i]);
    return s;
}

std::vector<float> log_f32(const std::vector<float>& v) {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = simdlog::np_logf(v[i]);  // numpy SIMD float32 log
    return out;
}

std::vector<double> interp(const std::vector<double>& x, const std::vector<float>& fp) {
    const int64_t m = int64_t(fp.size());
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        const double xv = x[i];
        if (std::isnan(xv)) {
            out[i] = xv;
        } else if (xv <= 0.0) {
            out[i] = fp[0];
        } else if (xv >= double(m - 1)) {
            out[i] = fp[size_t(m - 1)];
        } else {
            const int64_t j = int64_t(std::floor(xv));
            if (double(j) == xv) {
                out[i] = fp[size_t(j)];
            } else {
                const double slope = (double(fp[size_t(j + 1)]) - double(fp[size_t(j)])) / 1.0;
                out[i] = slope * (xv - double(j)) + double(fp[size_t(j)]);
            }
        }
    }
    return out;
}

double sigma_to_t_np(double sigma, const std::vector<float>& log_sigmas) {
    const int64_t m = int64_t(log_sigmas.size());
    const double log_sigma = std::log(std::max(sigma, 1e-10));
    // dists = log_sigma - log_sigmas[:, None]: a float64 scalar against a float32 array stays float32.
    const float ls32 = float(log_sigma);
    int64_t low = 0, count = 0, best = -1;
    for (int64_t i = 0; i < m; ++i) {
        count += (ls32 - log_sigmas[size_t(i)] >= 0.0f) ? 1 : 0;
        if (count > best) {
            best = count;
            low = i;
        }
    }
    low = std::min(low, m - 2);
    const int64_t high = low + 1;
    const float lo = log_sigmas[size_t(low)], hi = log_sigmas[size_t(high)];
    float w = (lo - ls32) / (lo - hi);
    w = std::min(std::max(w, 0.0f), 1.0f);
    // (1 - w) * low_idx: float32 array times int64 array -> float64.
    return double(1.0f - w) * double(low) + double(w) * double(high);
}

float sigma_to_t_torch(float sigma, const std::vector<float>& log_sigmas) {
    const int64_t m = int64_t(log_sigmas.size());
    // np.log(np.maximum(sigma, 1e-10)) with sigma a 0-d float32 torch tensor. Empirically the reference matches a
    // correctly rounded log here better than numpy's SIMD kernel or SLEEF (kdpm2_n25 still differs by 1 ulp).
    const float log_sigma = float(std::log(double(std::max(sigma, 1e-10f))));
    int64_t low = 0, count = 0, best = -1;
    for (int64_t i = 0; i < m; ++i) {
        count += (log_sigma - log_sigmas[size_t(i)] >= 0.0f) ? 1 : 0;
        if (count > best) {
            best = count;
            low = i;
        }
    }
    low = std::min(low, m - 2);
    const int64_t high = low + 1;
    const float lo = log_sigmas[size_t(low)], hi = log_sigmas[size_t(high)];
    float w = (lo - log_sigma) / (lo - hi);
    w = std::min(std::max(w, 0.0f), 1.0f);
    return (1.0f - w) * float(low) + w * float(high);
}

std::vector<float> torch_linspace(float start, float end, int64_t steps) {
    std::vector<float> out(size_t(std::max<int64_t>(steps, 0)));
    if (steps <= 0) return out;
    if (steps == 1) {
        out[0] = start;
        return out;
    }
    const float step = (end - start) / float(steps - 1);
    const int64_t halfway = steps / 2;
    for (int64_t i = 0; i < steps; ++i)
        out[size_t(i)] = i < halfway ? start + step * float(i) : end - step * float(steps - i - 1);
    return out;
}

double init_noise_sigma(const std::vector<float>& sigmas, const std::string& spacing) {
    float mx = 0.0f;
    for (float s : sigmas) mx = std::max(mx, s);
    if (spacing == "linspace" || spacing == "trailing") return mx;
    return std::sqrt(mx * mx + 1.0f);
}

void check_pair(const Tensor& a, const Tensor& b, const std::string& who) {
    if (!a.defined() || !b.defined()) fail(ErrorCode::INVALID_ARGUMENT, who, ": undefined tensor");
    if (a.dtype() != DType::F32 || b.dtype() != DType::F32 || a.device() != Device::CPU || b.device() != Device::CPU)
        fail(ErrorCode::INVALID_ARGUMENT, who, ": expected F32 CPU tensors, got ", a.describe(), " and ", b.describe());
    if (a.shape() != b.shape())
        fail(ErrorCode::INVALID_ARGUMENT, who, ": shape mismatch ", a.describe(), " vs ", b.describe());
}

Tensor new_like(const Tensor& t) { return Tensor::empty(t.shape(), DType::F32); }

Tensor scale_by_sigma(const Tensor& sample, float sigma) {
    check_pair(sample, sample, "scale_model_input");
    const Tensor x = sample.contiguous();
    Tensor out = new_like(x);
    const float d = std::sqrt(sigma * sigma + 1.0f);
    const float* px = x.data<float>();
    float* po = out.data<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) po[i] = px[i] / d;
    return out;
}

Tensor add_noise_sigma(const Tensor& original, const Tensor& noise, float sigma, const std::string& who) {
    check_pair(original, noise, who + ".add_noise");
    const Tensor o = original.contiguous(), z = noise.contiguous();
    Tensor out = new_like(o);
    const float* po = o.data<float>();
    const float* pz = z.data<float>();
    float* pr = out.data<float>();
    for (int64_t i = 0, n = o.numel(); i < n; ++i) pr[i] = po[i] + pz[i] * sigma;
    return out;
}

Tensor predict_x0(const Tensor& model_output, const Tensor& sample, float sigma, const std::string& prediction_type,
                  bool sample_supported, const std::string& who) {
    check_pair(model_output, sample, who + ".step");
    const Tensor m = model_output.contiguous(), x = sample.contiguous();
    Tensor out = new_like(x);
    const float* pm = m.data<float>();
    const float* px = x.data<float>();
    float* po = out.data<float>();
    const int64_t n = x.numel();
    if (prediction_type == "epsilon") {
        for (int64_t i = 0; i < n; ++i) po[i] = px[i] - sigma * pm[i];
    } else if (prediction_type == "v_prediction") {
        const float c = sigma * sigma + 1.0f;
        const float c_out = -sigma / std::sqrt(c);
        for (int64_t i = 0; i < n; ++i) po[i] = pm[i] * c_out + px[i] / c;
    } else if (prediction_type == "sample") {
        if (!sample_supported)
            fail(ErrorCode::UNSUPPORTED, who, ": prediction_type \"sample\" is not implemented for this scheduler");
        for (int64_t i = 0; i < n; ++i) po[i] = pm[i];
    } else {
        fail(ErrorCode::UNSUPPORTED, who, ": prediction_type \"", prediction_type, "\"");
    }
    return out;
}

}  // namespace sdxl::schedulers::ksig
