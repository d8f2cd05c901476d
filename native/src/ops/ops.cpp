// Op entry points: validate once (the message names the op and the shapes), normalise dims, broadcast
// shapes and defaults, then dispatch to the backend of the inputs' device. Backends trust these checks.
#include "ops/ops.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backends/backend.h"
#include "core/op_profile.h"

namespace sdxl::ops {

namespace {

void need_defined(const char* op, const char* name, const Tensor& t) {
    SDXL_CHECK(t.defined(), op, ": ", name, " is undefined");
}

// A floating tensor: F32 on the cpu (the reference computes in fp32 only); F32/F16/BF16 elsewhere, where the
// backend table says what it supports.
void need_float(const char* op, const char* name, const Tensor& t) {
    need_defined(op, name, t);
    if (t.device() == Device::CPU) {
        SDXL_CHECK(t.dtype() == DType::F32, op, ": ", name, " is ", t.describe(),
                   "; the cpu backend computes in F32, widen it first with to(DType::F32)");
    } else {
        SDXL_CHECK(is_floating(t.dtype()), op, ": ", name, " is ", t.describe(), ", expected a floating dtype");
    }
}

void need_same_device(const char* op, const char* xname, const Tensor& x, const char* name, const Tensor& t) {
    SDXL_CHECK(t.device() == x.device(), op, ": ", name, " is on ", device_name(t.device()), " but ", xname,
               " is on ", device_name(x.device()));
}

// A floating tensor on x's device with x's dtype.
void need_like(const char* op, const char* xname, const Tensor& x, const char* name, const Tensor& t) {
    need_float(op, name, t);
    need_same_device(op, xname, x, name, t);
    SDXL_CHECK(t.dtype() == x.dtype(), op, ": ", name, " is ", t.describe(), " but ", xname, " is ", x.describe(),
               " (dtypes must match)");
}

// A per-channel vector [n] (gamma, beta, bias), when given.
void need_vector(const char* op, const char* xname, const Tensor& x, const char* name, const Tensor& t, int64_t n) {
    if (!t.defined()) return;
    need_like(op, xname, x, name, t);
    SDXL_CHECK(t.dim() == 1 && t.shape()[0] == n, op, ": ", name, " must be [", n, "], got ", shape_str(t.shape()),
               " (", xname, " is ", shape_str(x.shape()), ")");
}

void need_eps(const char* op, float eps) {
    SDXL_CHECK(std::isfinite(eps) && eps >= 0.0f, op, ": eps must be finite and >= 0, got ", eps);
}

// The arguments of group_norm and group_norm_silu; `op` names the op in the messages.
void need_group_norm_args(const char* op, const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta,
                          float eps) {
    need_float(op, "x", x);
    SDXL_CHECK(x.dim() >= 2, op, ": x must be [N, C, *], got ", shape_str(x.shape()));
    SDXL_CHECK(groups >= 1, op, ": groups must be >= 1, got ", groups);
    SDXL_CHECK(x.shape()[1] % groups == 0, op, ": ", x.shape()[1], " channels of x ", shape_str(x.shape()),
               " are not divisible by ", groups, " groups");
    need_vector(op, "x", x, "gamma", gamma, x.shape()[1]);
    need_vector(op, "x", x, "beta", beta, x.shape()[1]);
    need_eps(op, eps);
}

int norm_dim(const char* op, int d, int rank) {
    SDXL_CHECK(d >= -rank && d < rank, op, ": dim ", d, " out of range for a ", rank, "-D tensor");
    return d < 0 ? d + rank : d;
}

// What an op reads and writes for the op profile (core/op_profile.h): its defined inputs and its output.
struct Io {
    double elements = 0, bytes = 0;
};
Io io_of(std::initializer_list<const Tensor*> inputs, const Shape& out, DType out_dtype) {
    Io r;
    for (const Tensor* t : inputs) {
        if (!t->defined()) continue;
        r.elements += double(t->numel());
        r.bytes += double(t->numel()) * double(dtype_size(t->dtype()));
    }
    const double n = double(shape_numel(out));
    r.elements += n;
    r.bytes += n * double(dtype_size(out_dtype));
    return r;
}

// Opens the op's profile scope (family, FLOPs, the inputs after `out_dtype`); in a count-only profile run the
// op returns an uninitialised result of its shape here and computes nothing. Costs one atomic load otherwise.
#define SDXL_OP_PROFILE(family, flops, out_shape, out_dtype, device, ...)                                      \
    const Io prof_io_ = profile::active() ? io_of({__VA_ARGS__}, out_shape, out_dtype) : Io{};                 \
    const profile::Scope prof_scope_(profile::Family::family, profile::active() ? double(flops) : 0.0,         \
                                     prof_io_.elements, prof_io_.bytes, device);                               \
    if (profile::dry_run()) return Tensor::empty(out_shape, out_dtype, device)

// The backend's implementation, or UNSUPPORTED naming the op and the backend.
template <typename Fn>
Fn impl(Fn fn, const char* op, const Backend& be, const Tensor& x) {
    if (!fn)
        fail(ErrorCode::UNSUPPORTED, op, " is not supported on the ", be.name, " backend (input ", x.describe(), ")");
    return fn;
}

// numpy/torch broadcasting of two shapes, aligned at the last dim.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
    const size_t nd = std::max(a.size(), b.size());
    Shape out(nd);
    for (size_t i = 0; i < nd; ++i) {
        const int64_t da = i + a.size() >= nd ? a[i + a.size() - nd] : 1;
        const int64_t db = i + b.size() >= nd ? b[i + b.size() - nd] : 1;
        SDXL_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                   " cannot be broadcast together (", da, " vs ", db, " at output dim ", i, ")");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

// dims [begin, end) of t merged into one, as a view; undefined when the strides don't allow it.
Tensor try_merge(const Tensor& t, int begin, int end) {
    int64_t size = 1, stride = -1, inner = 1;  // inner: product of the merged sizes inside the current dim
    for (int i = end - 1; i >= begin; --i) {
        const int64_t s = t.shape()[size_t(i)];
        size *= s;
        if (s == 1) continue;
        if (stride < 0) stride = t.strides()[size_t(i)];
        else if (t.strides()[size_t(i)] != stride * inner) return Tensor();
        inner *= s;
    }
    if (stride < 0) stride = 1;
    Shape shape(t.shape().begin(), t.shape().begin() + begin);
    Shape strides(t.strides().begin(), t.strides().begin() + begin);
    shape.push_back(size);
    strides.push_back(stride);
    shape.insert(shape.end(), t.shape().begin() + end, t.shape().end());
    strides.insert(strides.end(), t.strides().begin() + end, t.strides().end());
    if (size == 0) return Tensor::empty(shape, t.dtype(), t.device());  // nothing to address
    return Tensor::from_storage(t.storage(), t.offset(), shape, strides, t.dtype());
}

Tensor merge(const Tensor& t, int begin, int end) {
    Tensor m = try_merge(t, begin, end);
    return m.defined() ? m : try_merge(t.contiguous(), begin, end);
}

// t [batch..., r, c] seen with the batch dims broadcast to `batch` (stride 0 where repeated).
Tensor expand_batch(const Tensor& t, const Shape& batch) {
    const size_t nb = size_t(t.dim()) - 2;
    Shape shape = batch, strides(batch.size(), 0);
    for (size_t i = 0; i < nb; ++i) {
        const size_t o = batch.size() - nb + i;
        strides[o] = t.shape()[i] == 1 ? 0 : t.strides()[i];
    }
    shape.push_back(t.shape()[nb]);
    shape.push_back(t.shape()[nb + 1]);
    strides.push_back(t.strides()[nb]);
    strides.push_back(t.strides()[nb + 1]);
    return Tensor::from_storage(t.storage(), t.offset(), shape, strides, t.dtype());
}

}  // namespace

// ---------------------------------------------------------------------------------------- matrix products

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual) {
    need_float("linear", "x", x);
    need_like("linear", "x", x, "w", w);
    SDXL_CHECK(x.dim() >= 1, "linear: x must have at least 1 dim, got ", x.describe());
    SDXL_CHECK(w.dim() == 2, "linear: w must be 2-D [out, in], got ", shape_str(w.shape()));
    SDXL_CHECK(x.shape().back() == w.shape()[1], "linear: x ", shape_str(x.shape()), " has ", x.shape().back(),
               " input features but w ", shape_str(w.shape()), " expects ", w.shape()[1]);
    need_vector("linear", "w", w, "b", b, w.shape()[0]);
    Shape out_shape = x.shape();
    out_shape.back() = w.shape()[0];
    if (residual.defined()) {
        need_like("linear", "x", x, "residual", residual);
        SDXL_CHECK(residual.shape() == out_shape, "linear: residual must have the output's shape ",
                   shape_str(out_shape), " (x ", shape_str(x.shape()), ", w ", shape_str(w.shape()), "), got ",
                   shape_str(residual.shape()), " (no broadcasting)");
    }
    SDXL_OP_PROFILE(GEMM, 2.0 * double(shape_numel(out_shape)) * double(w.shape()[1]), out_shape, x.dtype(),
                    x.device(), &x, &w, &b, &residual);
    const Backend& be = backend_for(x.device());
    return impl(be.linear, "linear", be, x)(x, w, b, residual);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
    need_float("matmul", "a", a);
    need_like("matmul", "a", a, "b", b);
    SDXL_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: inputs must have at least 1 dim, got ", a.describe(), " and ",
               b.describe());
    const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;  // [..., M, K]
    const Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;  // [..., K, N]
    const int64_t m = a2.size(-2), k = a2.size(-1), kb = b2.size(-2), n = b2.size(-1);
    SDXL_CHECK(k == kb, "matmul: a ", shape_str(a.shape()), " @ b ", shape_str(b.shape()), ": inner dims ", k, " and ",
               kb, " differ");
    const Shape ba(a2.shape().begin(), a2.shape().end() - 2), bb(b2.shape().begin(), b2.shape().end() - 2);
    const Shape batch = broadcast_shapes("matmul (batch dims)", ba, bb);
    const int64_t na = shape_numel(ba), nb = shape_numel(bb);

    Shape out_shape = batch;
    if (a.dim() > 1) out_shape.push_back(m);
    if (b.dim() > 1) out_shape.push_back(n);
    SDXL_OP_PROFILE(GEMM, 2.0 * double(shape_numel(out_shape)) * double(k), out_shape, a.dtype(), a.device(), &a,
                    &b);
    const Backend& be = backend_for(a.device());
    auto fn = impl(be.matmul, "matmul", be, a);
    if (shape_numel(out_shape) == 0 || k == 0) {
        // Nothing to multiply: an empty result, or sums over K = 0 (zeros).
        return Tensor::zeros(out_shape, a.dtype(), a.device());
    }

    // The backend takes a [Ba, M, K] @ b [Bb, K, N] with Ba, Bb in {B, 1}.
    auto to3 = [](const Tensor& t) { return t.dim() == 2 ? t.unsqueeze(0) : merge(t, 0, t.dim() - 2); };
    if (nb == 1) {
        const Tensor b3 = to3(b2);  // [1, K, N]
        // b is shared by every batch item: fold a's batch into its rows, one large product, when a allows.
        const Tensor folded = na > 1 ? try_merge(a2, 0, a2.dim() - 1) : Tensor();  // [batch*M, K]
        const Tensor a3 = folded.defined() ? folded.unsqueeze(0) : to3(a2);  // [1, batch*M, K] or [na, M, K]
        return fn(a3, b3).view(out_shape);
    }
    const Tensor b3 = merge(expand_batch(b2, batch), 0, int(batch.size()));  // [B, K, N]
    const Tensor a3 = na == 1 ? to3(a2) : merge(expand_batch(a2, batch), 0, int(batch.size()));  // [B or 1, M, K]
    return fn(a3, b3).view(out_shape);  // [B, M, N] -> [batch..., M, N]
}

// ---------------------------------------------------------------------------------------- convolution

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding) {
    need_float("conv2d", "x", x);
    need_like("conv2d", "x", x, "w", w);
    SDXL_CHECK(x.dim() == 4, "conv2d: x must be 4-D [N, C, H, W], got ", shape_str(x.shape()));
    SDXL_CHECK(w.dim() == 4, "conv2d: w must be 4-D [O, C, kh, kw], got ", shape_str(w.shape()));
    SDXL_CHECK(x.shape()[1] == w.shape()[1], "conv2d: x ", shape_str(x.shape()), " has ", x.shape()[1],
               " channels but w ", shape_str(w.shape()), " expects ", w.shape()[1]);
    SDXL_CHECK(w.shape()[2] >= 1 && w.shape()[3] >= 1, "conv2d: empty kernel in w ", shape_str(w.shape()));
    SDXL_CHECK(stride >= 1, "conv2d: stride must be >= 1, got ", stride);
    SDXL_CHECK(padding >= 0, "conv2d: padding must be >= 0, got ", padding);
    const int64_t hp = x.shape()[2] + 2 * int64_t(padding), wp = x.shape()[3] + 2 * int64_t(padding);
    SDXL_CHECK(hp >= w.shape()[2] && wp >= w.shape()[3], "conv2d: input ", shape_str(x.shape()), " padded by ",
               padding, " is smaller than the kernel of w ", shape_str(w.shape()));
    need_vector("conv2d", "w", w, "b", b, w.shape()[0]);
    const Shape out_shape{x.shape()[0], w.shape()[0], (hp - w.shape()[2]) / stride + 1, (wp - w.shape()[3]) / stride + 1};
    SDXL_OP_PROFILE(CONV, 2.0 * double(shape_numel(out_shape)) * double(w.numel() / std::max<int64_t>(1, w.shape()[0])),
                    out_shape, x.dtype(), x.device(), &x, &w, &b);
    const Backend& be = backend_for(x.device());
    return impl(be.conv2d, "conv2d", be, x)(x, w, b, stride, padding);
}

Tensor conv2d_fused(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding,
                    const Tensor& sample_bias, const Tensor& residual) {
    if (!sample_bias.defined() && !residual.defined()) return conv2d(x, w, b, stride, padding);
    // conv2d's own checks first (x, w, b, stride, padding), in count-only mode too.
    need_float("conv2d_fused", "x", x);
    SDXL_CHECK(x.dim() == 4 && w.dim() == 4, "conv2d_fused: x and w must be 4-D, got ", shape_str(x.shape()), " and ",
               shape_str(w.shape()));
    SDXL_CHECK(stride >= 1 && padding >= 0, "conv2d_fused: stride must be >= 1 and padding >= 0, got ", stride,
               " and ", padding);
    const int64_t N = x.shape()[0], O = w.shape()[0];
    const int64_t Ho = (x.shape()[2] + 2 * int64_t(padding) - w.shape()[2]) / stride + 1;
    const int64_t Wo = (x.shape()[3] + 2 * int64_t(padding) - w.shape()[3]) / stride + 1;
    const Shape out_shape{N, O, Ho, Wo};
    if (sample_bias.defined()) {
        need_like("conv2d_fused", "x", x, "sample_bias", sample_bias);
        SDXL_CHECK(sample_bias.dim() == 2 && sample_bias.shape()[0] == N && sample_bias.shape()[1] == O,
                   "conv2d_fused: sample_bias must be [N, O] = [", N, ", ", O, "], got ", shape_str(sample_bias.shape()));
    }
    if (residual.defined()) {
        need_like("conv2d_fused", "x", x, "residual", residual);
        SDXL_CHECK(residual.shape() == out_shape, "conv2d_fused: residual must be the output's shape ",
                   shape_str(out_shape), ", got ", shape_str(residual.shape()));
    }
    const Backend& be = backend_for(x.device());
    // Composed where the backend has no fused kernel (a count-only profile counts the fused op, as on CUDA):
    // conv2d validates the rest; the adds keep the unfused order.
    if (!be.conv2d_fused && !profile::dry_run()) {
        Tensor y = conv2d(x, w, b, stride, padding);                               // [N, O, Ho, Wo]
        if (sample_bias.defined()) y = add(y, sample_bias.view({N, O, 1, 1}));
        return residual.defined() ? add(residual, y) : y;
    }
    SDXL_CHECK(x.shape()[1] == w.shape()[1], "conv2d_fused: x ", shape_str(x.shape()), " has ", x.shape()[1],
               " channels but w ", shape_str(w.shape()), " expects ", w.shape()[1]);
    need_like("conv2d_fused", "x", x, "w", w);
    SDXL_CHECK(Ho >= 1 && Wo >= 1, "conv2d_fused: input ", shape_str(x.shape()), " padded by ", padding,
               " is smaller than the kernel of w ", shape_str(w.shape()));
    need_vector("conv2d_fused", "w", w, "b", b, O);
    SDXL_OP_PROFILE(CONV, 2.0 * double(shape_numel(out_shape)) * double(w.numel() / std::max<int64_t>(1, O)), out_shape,
                    x.dtype(), x.device(), &x, &w, &b, &sample_bias, &residual);
    return be.conv2d_fused(x, w, b, stride, padding, sample_bias, residual);
}

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
    need_float("upsample_nearest", "x", x);
    SDXL_CHECK(x.dim() == 4, "upsample_nearest: x must be 4-D [N, C, H, W], got ", shape_str(x.shape()));
    SDXL_CHECK(x.shape()[2] >= 1 && x.shape()[3] >= 1, "upsample_nearest: x ", shape_str(x.shape()),
               " has an empty spatial size");
    SDXL_CHECK(out_h >= 1 && out_w >= 1, "upsample_nearest: output size must be >= 1, got ", out_h, "x", out_w);
    const Shape out_shape{x.shape()[0], x.shape()[1], out_h, out_w};
    SDXL_OP_PROFILE(COPY, 0, out_shape, x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.upsample_nearest, "upsample_nearest", be, x)(x, out_h, out_w);
}

Tensor upsample_nearest2x(const Tensor& x) {
    need_defined("upsample_nearest2x", "x", x);
    SDXL_CHECK(x.dim() == 4, "upsample_nearest2x: x must be 4-D [N, C, H, W], got ", shape_str(x.shape()));
    return upsample_nearest(x, 2 * x.shape()[2], 2 * x.shape()[3]);
}

// ---------------------------------------------------------------------------------------- normalisation

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
    need_group_norm_args("group_norm", x, groups, gamma, beta, eps);
    SDXL_OP_PROFILE(NORM, 8.0 * double(x.numel()), x.shape(), x.dtype(), x.device(), &x, &gamma, &beta);
    const Backend& be = backend_for(x.device());
    return impl(be.group_norm, "group_norm", be, x)(x, groups, gamma, beta, eps);
}

Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
    need_group_norm_args("group_norm_silu", x, groups, gamma, beta, eps);
    SDXL_OP_PROFILE(NORM, 12.0 * double(x.numel()), x.shape(), x.dtype(), x.device(), &x, &gamma, &beta);
    const Backend& be = backend_for(x.device());
    return impl(be.group_norm_silu, "group_norm_silu", be, x)(x, groups, gamma, beta, eps);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    need_float("layer_norm", "x", x);
    SDXL_CHECK(x.dim() >= 1, "layer_norm: x must have at least 1 dim, got ", x.describe());
    need_vector("layer_norm", "x", x, "gamma", gamma, x.shape().back());
    need_vector("layer_norm", "x", x, "beta", beta, x.shape().back());
    need_eps("layer_norm", eps);
    SDXL_OP_PROFILE(NORM, 8.0 * double(x.numel()), x.shape(), x.dtype(), x.device(), &x, &gamma, &beta);
    const Backend& be = backend_for(x.device());
    return impl(be.layer_norm, "layer_norm", be, x)(x, gamma, beta, eps);
}

// ---------------------------------------------------------------------------------------- activations

Tensor silu(const Tensor& x) {
    need_float("silu", "x", x);
    SDXL_OP_PROFILE(ELEMENTWISE, double(x.numel()), x.shape(), x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.silu, "silu", be, x)(x);
}

Tensor gelu(const Tensor& x) {
    need_float("gelu", "x", x);
    SDXL_OP_PROFILE(ELEMENTWISE, double(x.numel()), x.shape(), x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.gelu, "gelu", be, x)(x);
}

Tensor gelu_tanh(const Tensor& x) {
    need_float("gelu_tanh", "x", x);
    SDXL_OP_PROFILE(ELEMENTWISE, double(x.numel()), x.shape(), x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.gelu_tanh, "gelu_tanh", be, x)(x);
}

Tensor quick_gelu(const Tensor& x) {
    need_float("quick_gelu", "x", x);
    SDXL_OP_PROFILE(ELEMENTWISE, double(x.numel()), x.shape(), x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.quick_gelu, "quick_gelu", be, x)(x);
}

Tensor geglu(const Tensor& x) {
    need_float("geglu", "x", x);
    SDXL_CHECK(x.dim() >= 1 && x.shape().back() % 2 == 0, "geglu: x must be [..., 2D] with an even last dim, got ",
               shape_str(x.shape()));
    Shape out_shape = x.shape();
    out_shape.back() /= 2;
    SDXL_OP_PROFILE(ELEMENTWISE, double(x.numel()), out_shape, x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.geglu, "geglu", be, x)(x);
}

Tensor softmax(const Tensor& x) {
    need_float("softmax", "x", x);
    SDXL_CHECK(x.dim() >= 1, "softmax: x must have at least 1 dim, got ", x.describe());
    SDXL_OP_PROFILE(NORM, 4.0 * double(x.numel()), x.shape(), x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.softmax, "softmax", be, x)(x);
}

// ---------------------------------------------------------------------------------------- attention

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                 float scale) {
    need_float("attention", "q", q);
    need_like("attention", "q", q, "k", k);
    need_like("attention", "q", q, "v", v);
    SDXL_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: q, k, v must be 4-D [B, H, L, D], got q ",
               shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
    const int64_t B = q.shape()[0], H = q.shape()[1], D = q.shape()[3], Lk = k.shape()[2];
    SDXL_CHECK(k.shape()[0] == B && k.shape()[1] == H && v.shape()[0] == B && v.shape()[1] == H,
               "attention: batch/heads differ: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
               shape_str(v.shape()));
    SDXL_CHECK(k.shape()[3] == D, "attention: q ", shape_str(q.shape()), " and k ", shape_str(k.shape()),
               " have head sizes ", D, " and ", k.shape()[3]);
    SDXL_CHECK(v.shape()[2] == Lk, "attention: k ", shape_str(k.shape()), " and v ", shape_str(v.shape()),
               " have ", Lk, " and ", v.shape()[2], " keys");
    if (key_mask.defined()) {
        need_same_device("attention", "q", q, "key_mask", key_mask);
        SDXL_CHECK(key_mask.dtype() == DType::F32 || key_mask.dtype() == DType::I64,
                   "attention: key_mask must be F32 or I64, got ", key_mask.describe());
        SDXL_CHECK(key_mask.dim() == 2 && key_mask.shape()[0] == B && key_mask.shape()[1] == Lk,
                   "attention: key_mask must be [B, Lk] = [", B, ", ", Lk, "], got ", shape_str(key_mask.shape()));
    }
    SDXL_CHECK(std::isfinite(scale), "attention: scale must be finite, got ", scale);
    const float s = scale > 0.0f ? scale : (D > 0 ? float(1.0 / std::sqrt(double(D))) : 1.0f);
    const int64_t Lq = q.shape()[2], Dv = v.shape()[3];
    const Shape out_shape{B, H, Lq, Dv};
    // q k^T and p v: 2 Lq Lk (D + Dv) per head (the causal half is not subtracted; CLIP's is tiny)
    SDXL_OP_PROFILE(ATTENTION, 2.0 * double(B * H) * double(Lq) * double(Lk) * double(D + Dv), out_shape, q.dtype(),
                    q.device(), &q, &k, &v, &key_mask);
    const Backend& be = backend_for(q.device());
    return impl(be.attention, "attention", be, q)(q, k, v, key_mask, causal, s);
}

// ---------------------------------------------------------------------------------------- arithmetic

namespace {

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&, const Shape&);

Tensor binary(const char* op, BinaryFn Backend::*member, const Tensor& a, const Tensor& b) {
    need_float(op, "a", a);
    need_like(op, "a", a, "b", b);
    const Shape out = broadcast_shapes(op, a.shape(), b.shape());
    SDXL_OP_PROFILE(ELEMENTWISE, double(shape_numel(out)), out, a.dtype(), a.device(), &a, &b);
    const Backend& be = backend_for(a.device());
    return impl(be.*member, op, be, a)(a, b, out);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", &Backend::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", &Backend::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", &Backend::mul, a, b); }

Tensor scale(const Tensor& x, float alpha, float beta) {
    need_float("scale", "x", x);
    SDXL_OP_PROFILE(ELEMENTWISE, 2.0 * double(x.numel()), x.shape(), x.dtype(), x.device(), &x);
    const Backend& be = backend_for(x.device());
    return impl(be.scale, "scale", be, x)(x, alpha, beta);
}

// ---------------------------------------------------------------------------------------- layout

Tensor concat(const std::vector<Tensor>& parts, int dim) {
    SDXL_CHECK(!parts.empty(), "concat: no tensors given");
    const Tensor& first = parts[0];
    need_defined("concat", "parts[0]", first);
    SDXL_CHECK(first.dim() >= 1, "concat: parts must have at least 1 dim, got ", first.describe());
    const int d = norm_dim("concat", dim, first.dim());
    for (size_t i = 0; i < parts.size(); ++i) {
        const Tensor& p = parts[i];
        SDXL_CHECK(p.defined(), "concat: parts[", i, "] is undefined");
        SDXL_CHECK(p.device() == first.device() && p.dtype() == first.dtype(), "concat: parts[", i, "] is ",
                   p.describe(), " but parts[0] is ", first.describe());
        bool same = p.dim() == first.dim();
        for (int j = 0; same && j < p.dim(); ++j) same = j == d || p.shape()[size_t(j)] == first.shape()[size_t(j)];
        SDXL_CHECK(same, "concat: parts[", i, "] ", shape_str(p.shape()), " does not match parts[0] ",
                   shape_str(first.shape()), " outside dim ", d);
    }
    Shape out_shape = first.shape();
    out_shape[size_t(d)] = 0;
    double in_elements = 0, in_bytes = 0;
    for (const Tensor& p : parts) {
        out_shape[size_t(d)] += p.shape()[size_t(d)];
        in_elements += double(p.numel());
        in_bytes += double(p.numel()) * double(dtype_size(p.dtype()));
    }
    const double n_out = double(shape_numel(out_shape));
    const profile::Scope prof_scope(profile::Family::COPY, 0, in_elements + n_out,
                                    in_bytes + n_out * double(dtype_size(first.dtype())), first.device());
    if (profile::dry_run()) return Tensor::empty(out_shape, first.dtype(), first.device());
    const Backend& be = backend_for(first.device());
    return impl(be.concat, "concat", be, first)(parts, d);
}

Tensor slice(const Tensor& x, int dim, int64_t start, int64_t length) {
    need_defined("slice", "x", x);
    SDXL_CHECK(x.dim() >= 1, "slice: x must have at least 1 dim, got ", x.describe());
    const int d = norm_dim("slice", dim, x.dim());
    const int64_t size = x.shape()[size_t(d)];
    SDXL_CHECK(start >= 0 && length >= 0 && start <= size && length <= size - start, "slice: [", start, ", ",
               start, " + ", length, ") is outside dim ", d, " of size ", size, " of x ", shape_str(x.shape()));
    return x.narrow(d, start, length);
}

// ---------------------------------------------------------------------------------------- embeddings

Tensor timestep_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift, float scale,
                          float max_period) {
    need_defined("timestep_embedding", "t", t);
    SDXL_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::I64, "timestep_embedding: t must be F32 or I64, got ",
               t.describe(), " (widen with to(DType::F32))");
    SDXL_CHECK(t.dim() == 1, "timestep_embedding: t must be 1-D [N], got ", shape_str(t.shape()));
    SDXL_CHECK(dim >= 1, "timestep_embedding: dim must be >= 1, got ", dim);
    SDXL_CHECK(std::isfinite(max_period) && max_period > 0.0f,
               "timestep_embedding: max_period must be finite and > 0, got ", max_period);
    SDXL_CHECK(std::isfinite(scale) && std::isfinite(downscale_freq_shift),
               "timestep_embedding: scale and downscale_freq_shift must be finite");
    SDXL_CHECK(dim / 2 == 0 || double(dim / 2) != double(downscale_freq_shift), "timestep_embedding: dim ", dim,
               " with downscale_freq_shift ", downscale_freq_shift, " divides by half_dim - shift = 0");
    const Shape out_shape{t.shape()[0], dim};
    SDXL_OP_PROFILE(ELEMENTWISE, 4.0 * double(shape_numel(out_shape)), out_shape, DType::F32, t.device(), &t);
    const Backend& be = backend_for(t.device());
    return impl(be.timestep_embedding, "timestep_embedding", be, t)(t, dim, flip_sin_to_cos, downscale_freq_shift,
                                                                    scale, max_period);
}

}  // namespace sdxl::ops
