#include "schedulers/scheduler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "ops/ops.h"

namespace sdxl::schedulers {

Scheduler::Scheduler(const api::SchedulerConfig& config) : config_(config) {
    if (config.has_trained_betas)
        fail(ErrorCode::UNSUPPORTED, config.class_name, ": trained_betas is not supported; use beta_schedule");
}

double Scheduler::cfg(double value, double dflt) const { return std::isnan(value) ? dflt : value; }
int64_t Scheduler::cfg(int64_t value, int64_t dflt) const { return value < 0 ? dflt : value; }
bool Scheduler::cfg_bool(int value, bool dflt) const { return value < 0 ? dflt : value != 0; }
std::string Scheduler::cfg(const std::string& value, const std::string& dflt) const {
    return value.empty() ? dflt : value;
}

namespace {

// torch.linspace(start, end, steps, dtype=float32) exactly as ATen's CPU kernel computes it on x86: the
// step in float; the first half counted from start, the second from end; full pairs of 8-float vectors
// (vectorized_loop takes 2 per iteration) built as base + j * step from the value at each vector's first
// index, the remainder one by one. That kernel is compiled with FMA (the AVX2 build), so every a + b * c
// there is one fused operation: std::fma here. (Checked: the SDXL training sigmas then match diffusers'
// reference bit for bit; without the fusing, 20-45 of 50 differ by an ulp.)
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps) {
    std::vector<float> out(static_cast<size_t>(steps));
    if (steps == 1) {
        out[0] = start;
        return out;
    }
    const float step = (end - start) / float(steps - 1);
    const int64_t halfway = steps / 2;
    auto scalar = [&](int64_t i) {
        return i < halfway ? std::fma(step, float(i), start) : std::fma(-step, float(steps - i - 1), end);
    };
    constexpr int64_t kVec = 8;
    int64_t i = 0;
    for (; i + 2 * kVec <= steps; i += 2 * kVec) {
        for (int64_t v = 0; v < 2; ++v) {
            const int64_t at = i + v * kVec;
            const float base = scalar(at);
            for (int64_t j = 0; j < kVec; ++j) out[size_t(at + j)] = std::fma(float(j), step, base);
        }
    }
    for (; i < steps; ++i) out[size_t(i)] = scalar(i);
    return out;
}

}  // namespace

void Scheduler::resolve_common(const Common& d) {
    const std::string& name = config_.class_name;
    common_.num_train_timesteps = cfg(config_.num_train_timesteps, d.num_train_timesteps);
    common_.beta_start = cfg(config_.beta_start, d.beta_start);
    common_.beta_end = cfg(config_.beta_end, d.beta_end);
    common_.beta_schedule = cfg(config_.beta_schedule, d.beta_schedule);
    common_.prediction_type = cfg(config_.prediction_type, d.prediction_type);
    common_.timestep_spacing = cfg(config_.timestep_spacing, d.timestep_spacing);
    common_.steps_offset = cfg(config_.steps_offset, d.steps_offset);
    common_.rescale_betas_zero_snr = cfg_bool(config_.rescale_betas_zero_snr, d.rescale_betas_zero_snr);
    const int64_t n = common_.num_train_timesteps;
    if (n < 2 || n > 100000) fail(ErrorCode::INVALID_ARGUMENT, name, ": num_train_timesteps ", n, " is out of range");
    if (common_.rescale_betas_zero_snr)
        fail(ErrorCode::UNSUPPORTED, name, ": rescale_betas_zero_snr is not supported yet");
    const auto& sp = common_.timestep_spacing;
    if (sp != "leading" && sp != "trailing" && sp != "linspace")
        fail(ErrorCode::UNSUPPORTED, name, ": timestep_spacing \"", sp, "\" (supported: leading, trailing, linspace)");
    const auto& pt = common_.prediction_type;
    if (pt != "epsilon" && pt != "v_prediction" && pt != "sample")
        fail(ErrorCode::UNSUPPORTED, name, ": prediction_type \"", pt, "\" (supported: epsilon, v_prediction, sample)");

    if (common_.beta_schedule == "linear") {
        betas_ = torch_linspace_f32(float(common_.beta_start), float(common_.beta_end), n);
    } else if (common_.beta_schedule == "scaled_linear") {
        // torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=float32) ** 2
        betas_ = torch_linspace_f32(float(std::sqrt(common_.beta_start)), float(std::sqrt(common_.beta_end)), n);
        for (float& b : betas_) b = b * b;
    } else if (common_.beta_schedule == "squaredcos_cap_v2") {
        // betas_for_alpha_bar (cosine): computed in Python floats, then a float32 tensor.
        auto alpha_bar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
        betas_.resize(size_t(n));
        for (int64_t i = 0; i < n; ++i) {
            double t1 = double(i) / double(n), t2 = double(i + 1) / double(n);
            betas_[size_t(i)] = float(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
        }
    } else {
        fail(ErrorCode::UNSUPPORTED, name, ": beta_schedule \"", common_.beta_schedule,
             "\" (supported: linear, scaled_linear, squaredcos_cap_v2)");
    }
    // alphas = 1 - betas (float32); torch.cumprod on the CPU accumulates float in double (acc_type) and
    // rounds each output to float.
    alphas_cumprod_.resize(betas_.size());
    double acc = 1.0;
    for (size_t i = 0; i < betas_.size(); ++i) {
        float alpha = 1.0f - betas_[i];
        acc *= double(alpha);
        alphas_cumprod_[i] = float(acc);
    }
}

void Scheduler::check_step_index(int64_t step_index) const {
    if (timesteps_.empty())
        fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": call set_timesteps before stepping");
    if (step_index < 0 || step_index >= int64_t(timesteps_.size()))
        fail(ErrorCode::INVALID_ARGUMENT, config_.class_name, ": step index ", step_index, " is outside [0, ",
             timesteps_.size(), ")");
}

Tensor Scheduler::add_noise(const Tensor& original, const Tensor& noise, int64_t step_index) const {
    fail(ErrorCode::UNSUPPORTED, config_.class_name, ": add_noise is not implemented for this scheduler yet");
}

std::vector<double> Scheduler::np_linspace(double start, double stop, int64_t n) {
    std::vector<double> out(size_t(std::max<int64_t>(n, 0)));
    if (n == 1) {
        out[0] = start;
        return out;
    }
    const double step = (stop - start) / double(n - 1);
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(i) * step + start;
    if (n > 1) out.back() = stop;
    return out;
}

std::vector<double> Scheduler::karras_sigmas(double sigma_min, double sigma_max, int64_t n, double rho) {
    std::vector<double> ramp = np_linspace(0.0, 1.0, n);
    const double min_inv_rho = std::pow(sigma_min, 1.0 / rho);
    const double max_inv_rho = std::pow(sigma_max, 1.0 / rho);
    for (double& r : ramp) r = std::pow(max_inv_rho + r * (min_inv_rho - max_inv_rho), rho);
    return ramp;
}

std::vector<double> Scheduler::sigma_to_t(const std::vector<double>& sigmas, const std::vector<double>& log_sigmas) {
    const int64_t m = int64_t(log_sigmas.size());
    if (m < 2) fail(ErrorCode::INTERNAL, "sigma_to_t: need at least two training sigmas");
    std::vector<double> out;
    out.reserve(sigmas.size());
    for (double sigma : sigmas) {
        const double log_sigma = std::log(std::max(sigma, 1e-10));
        // low_idx = (number of log_sigmas <= log_sigma... as cumsum(dists >= 0).argmax(), clipped to m - 2):
        // the last index whose log_sigma is still >= the training value, scanning the ascending table.
        int64_t count = 0, low = 0, best = -1;
        for (int64_t i = 0; i < m; ++i) {
            count += (log_sigma - log_sigmas[size_t(i)] >= 0) ? 1 : 0;
            if (count > best) {
                best = count;
                low = i;
            }
        }
        low = std::min(low, m - 2);
        const int64_t high = low + 1;
        const double lo = log_sigmas[size_t(low)], hi = log_sigmas[size_t(high)];
        double w = (lo - log_sigma) / (lo - hi);
        w = std::clamp(w, 0.0, 1.0);
        out.push_back((1.0 - w) * double(low) + w * double(high));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------- registry

namespace {
std::map<std::string, Factory>& factories() {
    static std::map<std::string, Factory> m;
    return m;
}
}  // namespace

Registrar::Registrar(const char* class_name, Factory factory) { factories()[class_name] = factory; }

std::vector<std::string> registered_names() {
    std::vector<std::string> out;
    for (const auto& kv : factories()) out.push_back(kv.first);
    return out;
}

std::unique_ptr<Scheduler> create(const api::SchedulerConfig& config) {
    auto it = factories().find(config.class_name);
    if (it == factories().end()) {
        std::string known;
        for (const auto& n : registered_names()) known += (known.empty() ? "" : ", ") + n;
        fail(ErrorCode::UNSUPPORTED, "scheduler class \"", config.class_name, "\" is not supported (supported: ",
             known, ")");
    }
    return it->second(config);
}

}  // namespace sdxl::schedulers
