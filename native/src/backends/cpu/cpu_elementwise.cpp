// Activations, softmax, broadcasting arithmetic, concat and the timestep embedding. Each formula is the one
// torch uses in float32 (same association order), so results agree with it to a few ulp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/cpu_math.h"
#include "backends/cpu/cpu_ops.h"
#include "core/parallel.h"

namespace sdxl::cpu {

namespace {

template <typename F>
Tensor unary(const Tensor& x, F f) {
    const Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape(), DType::F32);
    if (y.numel() == 0) return y;
    const float* xp = xc.data<float>();
    float* yp = y.data<float>();
    parallel_for(y.numel(), kElementwiseGrain, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) yp[i] = f(xp[i]);
    });
    return y;
}

inline float gelu_erf_f(float x) { return x * 0.5f * (1.0f + std::erf(x * float(M_SQRT1_2))); }

}  // namespace

Tensor silu(const Tensor& x) {
    return unary(x, [](float v) { return silu_f(v); });
}

Tensor gelu(const Tensor& x) { return unary(x, gelu_erf_f); }

Tensor gelu_tanh(const Tensor& x) {
    const float beta = float(M_SQRT2 * M_2_SQRTPI * 0.5);  // sqrt(2 / pi)
    const float kappa = 0.044715f;
    return unary(x, [=](float v) {
        const float inner = beta * (v + kappa * v * v * v);
        return 0.5f * v * (1.0f + std::tanh(inner));
    });
}

Tensor quick_gelu(const Tensor& x) {
    return unary(x, [](float v) { return v / (1.0f + fast_exp(-1.702f * v)); });
}

// x [..., 2D] -> [..., D]: first half * gelu(second half) (diffusers GEGLU: hidden, gate = chunk(2, -1)).
Tensor geglu(const Tensor& x) {
    const Tensor xc = x.contiguous();
    const int64_t two_d = x.shape().back(), d = two_d / 2;
    Shape out_shape = x.shape();
    out_shape.back() = d;
    Tensor y = Tensor::empty(out_shape, DType::F32);
    if (y.numel() == 0) return y;
    const int64_t rows = y.numel() / d;
    const float* xp = xc.data<float>();
    float* yp = y.data<float>();
    parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / d), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* h = xp + r * two_d;
            const float* gate = h + d;
            float* dst = yp + r * d;
            for (int64_t i = 0; i < d; ++i) dst[i] = h[i] * gelu_erf_f(gate[i]);
        }
    });
    return y;
}

// Over the last dimension, max-subtracted. A row of all -inf gives NaN, as in torch.
Tensor softmax(const Tensor& x) {
    const Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape(), DType::F32);
    if (y.numel() == 0) return y;
    const int64_t d = x.shape().back(), rows = y.numel() / d;
    const float* xp = xc.data<float>();
    float* yp = y.data<float>();
    parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / d), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            float* dst = yp + r * d;
            std::memcpy(dst, xp + r * d, size_t(d) * sizeof(float));
            const float mx = row_max(dst, d);
            const float inv = float(1.0 / exp_sub_sum(dst, d, mx));
            for (int64_t i = 0; i < d; ++i) dst[i] *= inv;
        }
    });
    return y;
}

// ---------------------------------------------------------------------------- broadcasting binary ops

namespace {

struct BDim {
    int64_t size, sa, sb;  // size, and strides of a and b in elements (0 where broadcast)
};

template <typename Op>
Tensor binary(const Tensor& a, const Tensor& b, const Shape& out_shape, Op op) {
    Tensor y = Tensor::empty(out_shape, DType::F32);
    if (y.numel() == 0) return y;
    const int nd = int(out_shape.size());
    // Dims outermost first, size-1 dims dropped, each input's strides aligned to the output (0 = broadcast).
    std::vector<BDim> dims;
    for (int i = 0; i < nd; ++i) {
        if (out_shape[i] == 1) continue;
        const int ia = i - (nd - a.dim()), ib = i - (nd - b.dim());
        const int64_t sa = ia >= 0 && a.shape()[ia] != 1 ? a.strides()[ia] : 0;
        const int64_t sb = ib >= 0 && b.shape()[ib] != 1 ? b.strides()[ib] : 0;
        // Merge into the previous (outer) dim when both inputs step through the two as one.
        if (!dims.empty() && dims.back().sa == sa * out_shape[i] && dims.back().sb == sb * out_shape[i]) {
            dims.back() = {dims.back().size * out_shape[i], sa, sb};
        } else {
            dims.push_back({out_shape[i], sa, sb});
        }
    }
    if (dims.empty()) dims.push_back({1, 0, 0});
    const BDim inner = dims.back();
    dims.pop_back();
    const int64_t n = inner.size, outer = y.numel() / n;
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    float* yp = y.data<float>();
    parallel_for(outer, std::max<int64_t>(1, kElementwiseGrain / n), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t oa = 0, ob = 0, rest = r;
            for (size_t k = dims.size(); k-- > 0;) {
                const int64_t idx = rest % dims[k].size;
                rest /= dims[k].size;
                oa += idx * dims[k].sa;
                ob += idx * dims[k].sb;
            }
            const float* pa = ap + oa;
            const float* pb = bp + ob;
            float* py = yp + r * n;
            if (inner.sa == 1 && inner.sb == 1) {
                for (int64_t i = 0; i < n; ++i) py[i] = op(pa[i], pb[i]);
            } else if (inner.sa == 1 && inner.sb == 0) {
                const float bv = *pb;
                for (int64_t i = 0; i < n; ++i) py[i] = op(pa[i], bv);
            } else if (inner.sa == 0 && inner.sb == 1) {
                const float av = *pa;
                for (int64_t i = 0; i < n; ++i) py[i] = op(av, pb[i]);
            } else {
                for (int64_t i = 0; i < n; ++i) py[i] = op(pa[i * inner.sa], pb[i * inner.sb]);
            }
        }
    });
    return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b, const Shape& out_shape) {
    return binary(a, b, out_shape, [](float u, float v) { return u + v; });
}
Tensor sub(const Tensor& a, const Tensor& b, const Shape& out_shape) {
    return binary(a, b, out_shape, [](float u, float v) { return u - v; });
}
Tensor mul(const Tensor& a, const Tensor& b, const Shape& out_shape) {
    return binary(a, b, out_shape, [](float u, float v) { return u * v; });
}

Tensor scale(const Tensor& x, float alpha, float beta) {
    return unary(x, [=](float v) { return alpha * v + beta; });
}

// Any dtype (a byte copy); parts agree in everything but their size along dim.
Tensor concat(const std::vector<Tensor>& parts, int dim) {
    Shape out_shape = parts[0].shape();
    int64_t total = 0;
    for (const Tensor& p : parts) total += p.shape()[size_t(dim)];
    out_shape[size_t(dim)] = total;
    const DType dt = parts[0].dtype();
    Tensor y = Tensor::empty(out_shape, dt);
    if (y.numel() == 0) return y;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < dim; ++i) outer *= out_shape[size_t(i)];
    for (size_t i = size_t(dim) + 1; i < out_shape.size(); ++i) inner *= out_shape[i];
    const size_t esz = dtype_size(dt);
    std::vector<Tensor> cparts;
    std::vector<const char*> src;
    std::vector<size_t> block;  // bytes of one part per outer index
    for (const Tensor& p : parts) {
        cparts.push_back(p.contiguous());
        src.push_back(static_cast<const char*>(cparts.back().raw_data()));
        block.push_back(size_t(p.shape()[size_t(dim)] * inner) * esz);
    }
    const size_t row = size_t(total * inner) * esz;
    char* yp = static_cast<char*>(y.raw_data());
    parallel_for(outer, std::max<int64_t>(1, int64_t(kElementwiseGrain * 4 / std::max<size_t>(1, row))),
                 [&](int64_t o0, int64_t o1) {
                     for (int64_t o = o0; o < o1; ++o) {
                         char* dst = yp + size_t(o) * row;
                         for (size_t k = 0; k < src.size(); ++k) {
                             if (block[k]) std::memcpy(dst, src[k] + size_t(o) * block[k], block[k]);
                             dst += block[k];
                         }
                     }
                 });
    return y;
}

// diffusers get_timestep_embedding, in float32 step by step as torch evaluates it:
//   exponent = -ln(max_period) * arange(half) / (half - shift); emb = scale * (t * exp(exponent))
//   [sin | cos] (flip: [cos | sin]), zero column appended for odd dim.
Tensor timestep_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift, float scale,
                          float max_period) {
    const int64_t n = t.shape()[0], half = dim / 2;
    Tensor y = Tensor::zeros({n, dim}, DType::F32);
    if (y.numel() == 0) return y;
    const float neg_log = float(-std::log(double(max_period)));
    const float denom = float(double(half) - double(downscale_freq_shift));
    std::vector<float> freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) freq[size_t(i)] = std::exp((neg_log * float(i)) / denom);

    const Tensor tc = t.contiguous();
    std::vector<float> tf(static_cast<size_t>(n));
    if (t.dtype() == DType::I64) {
        const int64_t* tp = tc.data<int64_t>();
        for (int64_t i = 0; i < n; ++i) tf[size_t(i)] = float(tp[i]);
    } else {
        const float* tp = tc.data<float>();
        for (int64_t i = 0; i < n; ++i) tf[size_t(i)] = tp[i];
    }
    float* yp = y.data<float>();
    const int64_t sin_at = flip_sin_to_cos ? half : 0, cos_at = flip_sin_to_cos ? 0 : half;
    for (int64_t r = 0; r < n; ++r) {
        float* row = yp + r * dim;
        for (int64_t i = 0; i < half; ++i) {
            const float e = scale * (tf[size_t(r)] * freq[size_t(i)]);
            row[sin_at + i] = std::sin(e);
            row[cos_at + i] = std::cos(e);
        }
    }
    return y;
}

}  // namespace sdxl::cpu
