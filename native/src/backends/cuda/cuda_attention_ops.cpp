// CUDA attention op: q/k/v of one floating dtype (F32, F16, BF16; fp32 softmax and accumulation), output
// of that dtype, contiguous [B, H, Lq, Dv]. Flash kernel for Dv == D in {32, 40, 64, 80}, a simple
// kernel otherwise (cuda_attention.cu).
#include "backends/backend.h"
#include "backends/cuda/cuda_attention.cuh"
#include "backends/cuda/cuda_attention_host.h"
#include "backends/cuda/cuda_context.cuh"
#include "core/error.h"

namespace sdxl::cuda {
namespace {

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                 float scale) {
    AttnDType dt = AttnDType::F32;
    switch (q.dtype()) {
        case DType::F32: dt = AttnDType::F32; break;
        case DType::F16: dt = AttnDType::F16; break;
        case DType::BF16: dt = AttnDType::BF16; break;
        default: fail(ErrorCode::UNSUPPORTED, "attention on cuda: unsupported dtype ", q.describe());
    }
    Tensor out = Tensor::empty({q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]}, q.dtype(), Device::CUDA);
    if (out.numel() == 0) return out;
    launch_attention(attn::attention_params(q, k, v, key_mask, causal, scale, out), dt);
    return out;
}

}  // namespace

void register_attention_ops(Backend& b) { b.attention = attention; }

}  // namespace sdxl::cuda
