// Shared pieces of the k-diffusion style ("sigma") schedulers of diffusers: Euler, Euler ancestral, Heun, KDPM2,
// KDPM2 ancestral, LMS and DPM-Solver SDE. They all keep sigmas = sqrt((1 - alphas_cumprod) / alphas_cumprod)
// (a float32 tensor in diffusers), pick inference sigmas with np.interp, scale the model input by
// 1 / sqrt(sigma^2 + 1) and add noise as x + noise * sigma.
//
// Numerics follow diffusers v0.31 operation by operation: numpy float64 where numpy computes in float64,
// numpy float32 (NumPy 1.x value-based casting) where a float32 array meets a Python/NumPy scalar, and float
// arithmetic, one rounding per torch op, where diffusers holds torch float32 tensors.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "schedulers/scheduler.h"

namespace sdxl::schedulers::ksig {

// diffusers' three timestep spacings as the numpy float32 array those classes build ("linspace": np.linspace
// in float64 then cast; "leading": (arange(n) * (N // n)).round() + steps_offset; "trailing":
// arange(N, 0, -N / n).round() - 1).
std::vector<float> spacing_timesteps_f32(const std::string& spacing, int64_t n, int64_t num_train, int64_t steps_offset,
                                         const std::string& who);
// The same in float64 (DPMSolverSDEScheduler builds its timesteps with dtype=float).
std::vector<double> spacing_timesteps_f64(const std::string& spacing, int64_t n, int64_t num_train,
                                          int64_t steps_offset, const std::string& who);

// ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 as torch float32 ops.
std::vector<float> train_sigmas(const std::vector<float>& alphas_cumprod);
// np.log of a float32 array (float32 result).
std::vector<float> log_f32(const std::vector<float>& v);

// np.interp(x, arange(len(fp)), fp) in float64.
std::vector<double> interp(const std::vector<double>& x, const std::vector<float>& fp);

// diffusers EulerDiscreteScheduler._sigma_to_t for one float64 sigma and a float32 log_sigmas table, with
// NumPy 1.x casting (the float32 table keeps the interpolation weight in float32; the final mix is float64).
double sigma_to_t_np(double sigma, const std::vector<float>& log_sigmas);
// The torch variant (KDPM2 classes' sigma_to_t on float32 tensors): everything in float32.
float sigma_to_t_torch(float sigma, const std::vector<float>& log_sigmas);

// torch.linspace(start, end, steps) in float32.
std::vector<float> torch_linspace(float start, float end, int64_t steps);

// init_noise_sigma of these classes: max(sigmas) for linspace/trailing, else sqrt(max^2 + 1) (float32).
double init_noise_sigma(const std::vector<float>& sigmas, const std::string& spacing);

// sample / sqrt(sigma^2 + 1), float32.
Tensor scale_by_sigma(const Tensor& sample, float sigma);
// original + noise * sigma, float32.
Tensor add_noise_sigma(const Tensor& original, const Tensor& noise, float sigma, const std::string& who);

// pred_original_sample from model_output for "epsilon" / "v_prediction" / "sample" with sigma_input, float32:
//   epsilon: sample - sigma * model_output
//   v:       model_output * (-sigma / sqrt(sigma^2 + 1)) + sample / (sigma^2 + 1)
//   sample:  model_output
// `sample_supported` false throws UNSUPPORTED for "sample" (as those classes raise NotImplementedError).
Tensor predict_x0(const Tensor& model_output, const Tensor& sample, float sigma, const std::string& prediction_type,
                  bool sample_supported, const std::string& who);

// Checks that a and b are contiguous F32 CPU tensors of one shape.
void check_pair(const Tensor& a, const Tensor& b, const std::string& who);
Tensor new_like(const Tensor& t);

}  // namespace sdxl::schedulers::ksig
