// Elementwise ops of the CUDA backend (F32 so far): broadcasting add/sub/mul by strides, scale, silu.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_elementwise.cuh"

namespace sdxl::cuda {
namespace {

void require_f32(const Tensor& t, const char* op) {
    if (t.dtype() != DType::F32)
        fail(ErrorCode::UNSUPPORTED, op, " on cuda supports F32 only so far, got ", t.describe());
}

Tensor binary(const Tensor& a, const Tensor& b, const Shape& out_shape, BinaryOp op, const char* name) {
    require_f32(a, name);
    require_f32(b, name);
    const int nd = int(out_shape.size());
    if (nd > kMaxDims) fail(ErrorCode::UNSUPPORTED, name, " on cuda: at most ", kMaxDims, " dims");
    Tensor out = Tensor::empty(out_shape, DType::F32, Device::CUDA);
    BinaryParams p{};
    p.a = static_cast<const float*>(a.raw_data());
    p.b = static_cast<const float*>(b.raw_data());
    p.out = static_cast<float*>(out.raw_data());
    p.numel = out.numel();
    p.ndim = nd;
    // Right-align operand dims with the output; broadcast dims get stride 0.
    for (int d = 0; d < nd; ++d) {
        p.shape[d] = out_shape[d];
        int da = d - (nd - a.dim()), db = d - (nd - b.dim());
        p.a_strides[d] = (da >= 0 && a.shape()[da] != 1) ? a.strides()[da] : 0;
        p.b_strides[d] = (db >= 0 && b.shape()[db] != 1) ? b.strides()[db] : 0;
    }
    launch_binary(p, op);
    return out;
}

Tensor add(const Tensor& a, const Tensor& b, const Shape& s) { return binary(a, b, s, BinaryOp::ADD, "add"); }
Tensor sub(const Tensor& a, const Tensor& b, const Shape& s) { return binary(a, b, s, BinaryOp::SUB, "sub"); }
Tensor mul(const Tensor& a, const Tensor& b, const Shape& s) { return binary(a, b, s, BinaryOp::MUL, "mul"); }

Tensor scale(const Tensor& x, float alpha, float beta) {
    require_f32(x, "scale");
    Tensor in = x.contiguous();
    Tensor out = Tensor::empty(x.shape(), DType::F32, Device::CUDA);
    launch_scale(static_cast<const float*>(in.raw_data()), static_cast<float*>(out.raw_data()), x.numel(), alpha, beta);
    return out;
}

Tensor silu(const Tensor& x) {
    require_f32(x, "silu");
    Tensor in = x.contiguous();
    Tensor out = Tensor::empty(x.shape(), DType::F32, Device::CUDA);
    launch_silu(static_cast<const float*>(in.raw_data()), static_cast<float*>(out.raw_data()), x.numel());
    return out;
}

}  // namespace

void register_elementwise_ops(Backend& b) {
    b.add = add;
    b.sub = sub;
    b.mul = mul;
    b.scale = scale;
    b.silu = silu;
}

}  // namespace sdxl::cuda
