// Elementwise and layout ops of the CUDA backend (F32/F16/BF16 storage, float math): broadcasting add/sub/mul
// by strides, scale, the activations, geglu, concat, upsample_nearest, timestep_embedding.
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_elementwise.cuh"
#include "backends/cuda/cuda_misc.cuh"

namespace sdxl::cuda {
namespace {

void require_float(const Tensor& t, const char* op) {
    if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
        fail(ErrorCode::UNSUPPORTED, op, " on cuda supports F32/F16/BF16, got ", t.describe());
}

Tensor binary(const Tensor& a, const Tensor& b, const Shape& out_shape, BinaryOp op, const char* name) {
    require_float(a, name);
    const int nd = int(out_shape.size());
    if (nd > kMaxDims) fail(ErrorCode::UNSUPPORTED, name, " on cuda: at most ", kMaxDims, " dims, got ", nd);
    Tensor out = Tensor::empty(out_shape, a.dtype(), Device::CUDA);
    BinaryParams p{};
    p.a = a.raw_data();
    p.b = b.raw_data();
    p.out = out.raw_data();
    p.dtype = a.dtype();  // ops/ checked that b has the same dtype
    p.numel = out.numel();
    p.ndim = nd;
    // Right-align operand dims with the output; broadcast dims get stride 0. Strided (non-contiguous)
    // operands are read in place through their strides.
    for (int d = 0; d < nd; ++d) {
        p.shape[d] = out_shape[size_t(d)];
        const int da = d - (nd - a.dim()), db = d - (nd - b.dim());
        p.a_strides[d] = (da >= 0 && a.shape()[size_t(da)] != 1) ? a.strides()[size_t(da)] : 0;
        p.b_strides[d] = (db >= 0 && b.shape()[size_t(db)] != 1) ? b.strides()[size_t(db)] : 0;
    }
    launch_binary(p, op);
    return out;
}

Tensor add(const Tensor& a, const Tensor& b, const Shape& s) { return binary(a, b, s, BinaryOp::ADD, "add"); }
Tensor sub(const Tensor& a, const Tensor& b, const Shape& s) { return binary(a, b, s, BinaryOp::SUB, "sub"); }
Tensor mul(const Tensor& a, const Tensor& b, const Shape& s) { return binary(a, b, s, BinaryOp::MUL, "mul"); }

Tensor unary(const Tensor& x, UnaryOp op, const char* name, float alpha = 1.0f, float beta = 0.0f) {
    require_float(x, name);
    const Tensor in = x.contiguous();
    Tensor out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    UnaryParams p;
    p.x = in.raw_data();
    p.out = out.raw_data();
    p.dtype = x.dtype();
    p.n = x.numel();
    p.alpha = alpha;
    p.beta = beta;
    launch_unary(p, op);
    return out;
}

Tensor scale(const Tensor& x, float alpha, float beta) { return unary(x, UnaryOp::SCALE, "scale", alpha, beta); }
Tensor silu(const Tensor& x) { return unary(x, UnaryOp::SILU, "silu"); }
Tensor gelu(const Tensor& x) { return unary(x, UnaryOp::GELU, "gelu"); }
Tensor gelu_tanh(const Tensor& x) { return unary(x, UnaryOp::GELU_TANH, "gelu_tanh"); }
Tensor quick_gelu(const Tensor& x) { return unary(x, UnaryOp::QUICK_GELU, "quick_gelu"); }

// x [..., 2D] -> [..., D]
Tensor geglu(const Tensor& x) {
    require_float(x, "geglu");
    const Tensor in = x.contiguous();
    Shape out_shape = x.shape();
    const int64_t d = out_shape.back() / 2;
    out_shape.back() = d;
    Tensor out = Tensor::empty(out_shape, x.dtype(), Device::CUDA);
    if (out.numel() == 0) return out;
    launch_geglu({in.raw_data(), out.raw_data(), x.dtype(), out.numel() / d, d});
    return out;
}

// Any dtype: each part is copied through its own strides into its slice of the output (no contiguous() pass).
Tensor concat(const std::vector<Tensor>& parts, int dim) {
    Shape out_shape = parts[0].shape();
    int64_t total = 0;
    for (const Tensor& p : parts) total += p.shape()[size_t(dim)];
    out_shape[size_t(dim)] = total;
    const DType dt = parts[0].dtype();
    Tensor out = Tensor::empty(out_shape, dt, Device::CUDA);
    if (out.numel() == 0) return out;
    const Shape& ostr = out.strides();
    int64_t at = 0;  // start of the current part along dim
    for (const Tensor& p : parts) {
        const int64_t len = p.shape()[size_t(dim)];
        if (len > 0) {
            CopyParams c{};
            c.src = p.raw_data();
            c.dst = static_cast<char*>(out.raw_data()) + at * ostr[size_t(dim)] * int64_t(dtype_size(dt));
            c.src_dtype = c.dst_dtype = dt;
            c.ndim = p.dim();
            c.shape = p.shape().data();
            c.src_strides = p.strides().data();
            c.dst_strides = ostr.data();
            launch_copy(c);
        }
        at += len;
    }
    return out;
}

// x [N, C, H, W] -> [N, C, out_h, out_w]
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
    require_float(x, "upsample_nearest");
    const Tensor in = x.contiguous();
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    Tensor out = Tensor::empty({N, C, out_h, out_w}, x.dtype(), Device::CUDA);
    launch_upsample_nearest({in.raw_data(), out.raw_data(), x.dtype(), N * C, H, W, out_h, out_w});
    return out;
}

// t [N] (F32 or I64) -> [N, dim] F32, as the CPU backend.
// The frequencies on the host with the CPU backend's exact float operations, then uploaded: sin/cos of
// arguments up to ~1000 would amplify any last-ulp difference in them. Uploaded once per configuration and kept
// (a few hundred bytes), so that a step copies nothing from the host: a CUDA graph cannot capture that copy.
Tensor frequencies(int64_t half, float shift, float max_period) {
    static std::mutex mu;
    static auto* cache = new std::map<std::tuple<int64_t, float, float>, Tensor>();  // never destroyed
    std::lock_guard<std::mutex> lock(mu);
    const auto key = std::make_tuple(half, shift, max_period);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
    Tensor freq_host = Tensor::empty({std::max<int64_t>(half, 1)}, DType::F32);
    const float neg_log = float(-std::log(double(max_period)));
    const float denom = float(double(half) - double(shift));
    for (int64_t i = 0; i < half; ++i) freq_host.data<float>()[i] = std::exp((neg_log * float(i)) / denom);
    return cache->emplace(key, freq_host.to(Device::CUDA)).first->second;
}

Tensor timestep_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift, float scale,
                          float max_period) {
    const int64_t n = t.shape()[0], half = dim / 2;
    Tensor out = Tensor::empty({n, dim}, DType::F32, Device::CUDA);
    if (out.numel() == 0) return out;
    const Tensor freq = frequencies(half, downscale_freq_shift, max_period);
    const Tensor tc = t.contiguous();
    TimestepParams p{};
    p.t = tc.raw_data();
    p.t_dtype = t.dtype();
    p.freq = static_cast<const float*>(freq.raw_data());
    p.y = static_cast<float*>(out.raw_data());
    p.n = n;
    p.dim = dim;
    p.half = half;
    p.flip_sin_to_cos = flip_sin_to_cos;
    p.scale = scale;
    launch_timestep_embedding(p);
    return out;
}

}  // namespace

void register_elementwise_ops(Backend& b) {
    b.add = add;
    b.sub = sub;
    b.mul = mul;
    b.scale = scale;
    b.silu = silu;
    b.gelu = gelu;
    b.gelu_tanh = gelu_tanh;
    b.quick_gelu = quick_gelu;
    b.geglu = geglu;
    b.concat = concat;
    b.upsample_nearest = upsample_nearest;
    b.timestep_embedding = timestep_embedding;
}

}  // namespace sdxl::cuda
