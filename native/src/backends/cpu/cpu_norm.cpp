// group_norm (and group_norm_silu: SiLU applied in the same pass) and layer_norm. Statistics are two-pass in
// double (mean, then mean squared deviation), so a large common offset costs no accuracy; biased variance and
// eps inside the square root, as torch.
#include <algorithm>
#include <cmath>

#include "backends/cpu/cpu_math.h"
#include "backends/cpu/cpu_ops.h"
#include "core/parallel.h"

namespace sdxl::cpu {

namespace {

// Four independent accumulators: double adds can't be reassociated by the compiler, this keeps them busy.
double sum_f64(const float* p, int64_t n) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += p[i];
        a1 += p[i + 1];
        a2 += p[i + 2];
        a3 += p[i + 3];
    }
    for (; i < n; ++i) a0 += p[i];
    return (a0 + a1) + (a2 + a3);
}

double sum_sq_dev_f64(const float* p, int64_t n, double mean) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        double d0 = p[i] - mean, d1 = p[i + 1] - mean, d2 = p[i + 2] - mean, d3 = p[i + 3] - mean;
        a0 += d0 * d0;
        a1 += d1 * d1;
        a2 += d2 * d2;
        a3 += d3 * d3;
    }
    for (; i < n; ++i) {
        double d = p[i] - mean;
        a0 += d * d;
    }
    return (a0 + a1) + (a2 + a3);
}

struct Stats {
    double mean;
    double rstd;  // 1 / sqrt(var + eps)
};

Stats stats(const float* p, int64_t n, float eps) {
    if (n == 0) return {0.0, 1.0 / std::sqrt(double(eps))};
    const double mean = sum_f64(p, n) / double(n);
    const double var = sum_sq_dev_f64(p, n, mean) / double(n);
    return {mean, 1.0 / std::sqrt(var + double(eps))};
}

// x [N, C, *spatial]; statistics per (n, group) over C/groups channels x spatial. with_silu: y = silu(norm),
// each value rounded to float first, so the result equals silu(group_norm(x)) bit for bit.
Tensor group_norm_impl(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                       bool with_silu) {
    const Tensor xc = x.contiguous();
    const int64_t N = x.shape()[0], C = x.shape()[1];
    const int64_t S = C == 0 || N == 0 ? 0 : x.numel() / (N * C);  // spatial size
    const int64_t G = groups, cg = C / G;
    Tensor y = Tensor::empty(x.shape(), DType::F32);
    if (y.numel() == 0) return y;
    const Tensor gc = gamma.defined() ? gamma.contiguous() : Tensor();
    const Tensor bc = beta.defined() ? beta.contiguous() : Tensor();
    const float* gp = gc.defined() ? gc.data<float>() : nullptr;
    const float* bp = bc.defined() ? bc.data<float>() : nullptr;
    const float* xp = xc.data<float>();
    float* yp = y.data<float>();
    parallel_for(N * G, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {  // t = n*G + g; the group is one contiguous run of cg*S values
            const int64_t base = t * cg * S;
            const Stats st = stats(xp + base, cg * S, eps);
            for (int64_t cl = 0; cl < cg; ++cl) {
                const int64_t c = (t % G) * cg + cl;
                // (x - mean) * (rstd * gamma) + beta, in double: no cancellation when |mean| >> std.
                const double a = st.rstd * (gp ? double(gp[c]) : 1.0);
                const double b = bp ? double(bp[c]) : 0.0;
                const double mean = st.mean;
                const float* src = xp + base + cl * S;
                float* dst = yp + base + cl * S;
                for (int64_t i = 0; i < S; ++i) dst[i] = float((double(src[i]) - mean) * a + b);
                if (with_silu)
                    for (int64_t i = 0; i < S; ++i) dst[i] = silu_f(dst[i]);  // while the channel is in cache
            }
        }
    });
    return y;
}

}  // namespace

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
    return group_norm_impl(x, groups, gamma, beta, eps, false);
}

Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
    return group_norm_impl(x, groups, gamma, beta, eps, true);
}

// Over the last dimension D: x [..., D].
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    const Tensor xc = x.contiguous();
    const int64_t D = x.shape().back();
    const int64_t rows = D == 0 ? 0 : x.numel() / D;
    Tensor y = Tensor::empty(x.shape(), DType::F32);
    if (y.numel() == 0) return y;
    const Tensor gc = gamma.defined() ? gamma.contiguous() : Tensor();
    const Tensor bc = beta.defined() ? beta.contiguous() : Tensor();
    const float* gp = gc.defined() ? gc.data<float>() : nullptr;
    const float* bp = bc.defined() ? bc.data<float>() : nullptr;
    const float* xp = xc.data<float>();
    float* yp = y.data<float>();
    parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* src = xp + r * D;
            float* dst = yp + r * D;
            const Stats st = stats(src, D, eps);
            for (int64_t i = 0; i < D; ++i) {
                double v = (double(src[i]) - st.mean) * st.rstd;
                if (gp) v *= double(gp[i]);
                if (bp) v += double(bp[i]);
                dst[i] = float(v);
            }
        }
    });
    return y;
}

}  // namespace sdxl::cpu
