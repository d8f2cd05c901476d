// Normalisation ops of the CUDA backend: group_norm, the fused group_norm + SiLU (group_norm_silu, also
// callable directly: cuda_norm.cuh), layer_norm, softmax (F32/F16/BF16 storage, fp32 math).
#include <cmath>

#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_norm.cuh"

namespace sdxl::cuda {
namespace {

void require_float(const Tensor& t, const char* op) {
    if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
        fail(ErrorCode::UNSUPPORTED, op, " on cuda supports F32/F16/BF16, got ", t.describe());
}

// gamma/beta: contiguous copies kept alive by the caller, or undefined (null pointer).
const void* opt_ptr(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

Tensor group_norm_impl(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu) {
    require_float(x, silu ? "group_norm_silu" : "group_norm");
    const Tensor xc = x.contiguous();
    const Tensor gc = gamma.defined() ? gamma.contiguous() : Tensor();
    const Tensor bc = beta.defined() ? beta.contiguous() : Tensor();
    const int64_t N = x.shape()[0], C = x.shape()[1];
    const int64_t S = N == 0 || C == 0 ? 0 : x.numel() / (N * C);  // spatial size (any number of trailing dims)
    Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    if (y.numel() == 0) return y;
    GroupNormParams p;
    p.x = xc.raw_data();
    p.y = y.raw_data();
    p.gamma = opt_ptr(gc);
    p.beta = opt_ptr(bc);
    p.dtype = x.dtype();
    p.n = N;
    p.c = C;
    p.spatial = S;
    p.groups = groups;
    p.eps = eps;
    p.silu = silu;
    launch_group_norm(p);
    return y;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
    return group_norm_impl(x, groups, gamma, beta, eps, false);
}

// x [..., D]
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    require_float(x, "layer_norm");
    const Tensor xc = x.contiguous();
    const Tensor gc = gamma.defined() ? gamma.contiguous() : Tensor();
    const Tensor bc = beta.defined() ? beta.contiguous() : Tensor();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    if (y.numel() == 0) return y;
    const int64_t d = x.shape().back();
    launch_layer_norm({xc.raw_data(), y.raw_data(), opt_ptr(gc), opt_ptr(bc), x.dtype(), y.numel() / d, d, eps});
    return y;
}

// x [..., D], over the last dim
Tensor softmax(const Tensor& x) {
    require_float(x, "softmax");
    const Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    if (y.numel() == 0) return y;
    const int64_t d = x.shape().back();
    launch_softmax({xc.raw_data(), y.raw_data(), x.dtype(), y.numel() / d, d});
    return y;
}

}  // namespace

Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
    if (x.device() != Device::CUDA) fail(ErrorCode::INVALID_ARGUMENT, "group_norm_silu: x is ", x.describe());
    SDXL_CHECK(x.dim() >= 2 && groups >= 1 && x.shape()[1] % groups == 0, "group_norm_silu: x ", x.describe(),
               " with ", groups, " groups");
    // As ops::group_norm's checks: the kernel reads gamma/beta as x's element type, C of them, on the device.
    for (const Tensor* t : {&gamma, &beta}) {
        if (!t->defined()) continue;
        SDXL_CHECK(t->device() == Device::CUDA && t->dtype() == x.dtype() && t->dim() == 1 &&
                       t->shape()[0] == x.shape()[1],
                   "group_norm_silu: gamma/beta must be ", dtype_name(x.dtype()), "[", x.shape()[1],
                   "] on cuda like x ", x.describe(), ", got ", t->describe());
    }
    SDXL_CHECK(std::isfinite(eps) && eps >= 0.0f, "group_norm_silu: eps must be finite and >= 0, got ", eps);
    return group_norm_impl(x, groups, gamma, beta, eps, true);
}

void register_norm_ops(Backend& b) {
    b.group_norm = group_norm;
    b.group_norm_silu = group_norm_silu;  // the public entry below ops/: re-checks its arguments (cheap)
    b.layer_norm = layer_norm;
    b.softmax = softmax;
}

}  // namespace sdxl::cuda
