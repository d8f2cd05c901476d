// The scheduler contract of diffusers, one class per file in this folder, created by class name from a
// SchedulerConfig (registry.cpp). Host-side coefficient math in double where diffusers uses numpy float64,
// float32 where diffusers holds torch float32 tensors; the per-element update runs on the sample's tensors.
//
// Driving a scheduler (what the pipeline does):
//   s->set_timesteps(n);  x = x_init * s->init_noise_sigma();
//   for (i = begin; i < s->timesteps().size(); ++i) {
//       in = s->scale_model_input(x, i);  eps = unet(in, s->timesteps()[i]);  x = s->step(eps, i, x, noise).prev_sample;
//   }
// `i` is the position in timesteps() (diffusers' step_index, which it derives from t; set_begin_index's
// offset is simply where the loop starts).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "sdxl/configs.h"

namespace sdxl::schedulers {

// torch.randn(shape, generator=g) for stochastic steps; empty when the caller passed no generator (a
// scheduler that needs noise then throws INVALID_ARGUMENT).
using NoiseFn = std::function<Tensor(const Shape&)>;

struct StepResult {
    Tensor prev_sample;
    Tensor pred_original_sample;  // undefined when this scheduler's step does not produce one
};

class Scheduler {
public:
    explicit Scheduler(const api::SchedulerConfig& config);
    virtual ~Scheduler() = default;

    // Resets all step state and computes timesteps() (and sigmas() where the class has them).
    virtual void set_timesteps(int64_t num_inference_steps) = 0;
    const std::vector<double>& timesteps() const { return timesteps_; }
    const std::vector<double>& sigmas() const { return sigmas_; }  // empty for classes without sigmas
    virtual double init_noise_sigma() const { return 1.0; }
    virtual int order() const { return 1; }
    virtual Tensor scale_model_input(const Tensor& sample, int64_t step_index) { return sample; }
    virtual StepResult step(const Tensor& model_output, int64_t step_index, const Tensor& sample,
                            const NoiseFn& noise) = 0;
    // img2img: noise added to clean latents at timesteps()[step_index] (diffusers add_noise).
    virtual Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t step_index) const;

    const api::SchedulerConfig& config() const { return config_; }

protected:
    // Resolved common settings (config value, or this class's default given to resolve_common()).
    struct Common {
        int64_t num_train_timesteps = 1000;
        double beta_start = 0.0001, beta_end = 0.02;
        std::string beta_schedule = "linear";
        std::string prediction_type = "epsilon";
        std::string timestep_spacing = "linspace";
        int64_t steps_offset = 0;
        bool rescale_betas_zero_snr = false;
    };
    // Applies config over `defaults`, checks values, and fills betas_ / alphas_cumprod_ (float32 values, as
    // diffusers keeps them in torch.float32 tensors).
    void resolve_common(const Common& defaults);
    void check_step_index(int64_t step_index) const;

    // Unset-aware getters: the config value when set, else the default.
    double cfg(double value, double dflt) const;
    int64_t cfg(int64_t value, int64_t dflt) const;
    bool cfg_bool(int value, bool dflt) const;
    std::string cfg(const std::string& value, const std::string& dflt) const;

    // Karras et al. (2022) sigmas between sigma_min and sigma_max (rho 7), as diffusers _convert_to_karras.
    static std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n, double rho = 7.0);
    // diffusers _sigma_to_t: the (fractional) timestep of each sigma by interpolation in log_sigmas
    // (the log of the training sigmas, index = training timestep).
    static std::vector<double> sigma_to_t(const std::vector<double>& sigmas, const std::vector<double>& log_sigmas);
    // numpy.linspace(start, stop, n) in float64 (start + i * step, the last value exactly stop).
    static std::vector<double> np_linspace(double start, double stop, int64_t n);

    api::SchedulerConfig config_;
    Common common_;
    std::vector<float> betas_, alphas_cumprod_;
    std::vector<double> timesteps_, sigmas_;
};

std::unique_ptr<Scheduler> create(const api::SchedulerConfig& config);

using Factory = std::unique_ptr<Scheduler> (*)(const api::SchedulerConfig&);
// Each scheduler file registers its class name once: SDXL_REGISTER_SCHEDULER("EulerDiscreteScheduler", Euler).
struct Registrar {
    Registrar(const char* class_name, Factory factory);
};
std::vector<std::string> registered_names();

}  // namespace sdxl::schedulers

#define SDXL_REGISTER_SCHEDULER(class_name, Type)                                                    \
    static ::sdxl::schedulers::Registrar sdxl_registrar_##Type(                                      \
        class_name, [](const ::sdxl::api::SchedulerConfig& c) -> std::unique_ptr<::sdxl::schedulers::Scheduler> { \
            return std::make_unique<Type>(c);                                                        \
        })
