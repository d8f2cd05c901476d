// CUDA attention op: q/k/v of one floating dtype (F32, F16, BF16; fp32 softmax and accumulation), output
// of that dtype, [B, H, Lq, Dv] as a view of a [B, Lq, H, Dv] buffer (the flash and simple kernels). Flash kernels for Dv == D in {32, 40, 64, 80}: on tensor cores for
// F16/BF16 without mask or causal order at D in {64, 80} (cuda_attention_mma.cu: SDXL's UNet attention), on
// SIMT FMAs otherwise (cuda_attention.cu); for other head sizes without mask or causal order (the VAE's single
// 512-wide head over up to 16384 tokens) two cuBLAS GEMMs around a softmax; the simple kernel otherwise, or
// when cuBLAS is not available (cuda_attention.cu).
#include "backends/backend.h"
#include "backends/cuda/cuda_attention.cuh"
#include "backends/cuda/cuda_attention_host.h"
#include "backends/cuda/cuda_context.cuh"
#include "core/error.h"
#include "ops/ops.h"

namespace sdxl::cuda {
namespace {

bool has_flash_kernel(int64_t d, int64_t dv) { return d == dv && (d == 32 || d == 40 || d == 64 || d == 80); }

// softmax(scale * q k^T) v as GEMM, softmax, GEMM: the scores [B*H, Lq, Lk] are materialised (the VAE's
// 16384^2 scores are 512 MiB in fp16), which the simple kernel's per-row re-reading of K and V would make far
// slower. Throws UNSUPPORTED where cuBLAS is compiled out or absent.
Tensor attention_by_gemm(const Tensor& q, const Tensor& k, const Tensor& v, float scale) {
    const int64_t B = q.shape()[0], H = q.shape()[1], Lq = q.shape()[2], D = q.shape()[3];
    const int64_t Lk = k.shape()[2], Dv = v.shape()[3];
    const Tensor q3 = q.contiguous().view({B * H, Lq, D});                       // [BH, Lq, D]
    const Tensor kt = k.contiguous().view({B * H, Lk, D}).transpose(1, 2);      // [BH, D, Lk] (a view)
    const Tensor v3 = v.contiguous().view({B * H, Lk, Dv});                     // [BH, Lk, Dv]
    Tensor scores = ops::scale(ops::matmul(q3, kt), scale, 0.0f);              // [BH, Lq, Lk]
    Tensor p = ops::softmax(scores);                                            // [BH, Lq, Lk]
    return ops::matmul(p, v3).view({B, H, Lq, Dv});                             // [B, H, Lq, Dv]
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                 float scale) {
    if (!has_flash_kernel(q.shape()[3], v.shape()[3]) && !key_mask.defined() && !causal && k.shape()[2] > 0) {
        try {
            return attention_by_gemm(q, k, v, scale);
        } catch (const Error& e) {
            if (e.code() != ErrorCode::UNSUPPORTED) throw;  // no cuBLAS: the simple kernel below
        }
    }
    AttnDType dt = AttnDType::F32;
    switch (q.dtype()) {
        case DType::F32: dt = AttnDType::F32; break;
        case DType::F16: dt = AttnDType::F16; break;
        case DType::BF16: dt = AttnDType::BF16; break;
        default: fail(ErrorCode::UNSUPPORTED, "attention on cuda: unsupported dtype ", q.describe());
    }
    // Written in [B, Lq, H, Dv] memory order and returned as the [B, H, Lq, Dv] view, so that the model's
    // o.permute(0, 2, 1, 3).reshape(B, Lq, H * Dv) (diffusers' head merge) is free instead of a copy.
    const int64_t B = q.shape()[0], H = q.shape()[1], Lq = q.shape()[2], Dv = v.shape()[3];
    const Tensor out = Tensor::empty({B, Lq, H, Dv}, q.dtype(), Device::CUDA).permute({0, 2, 1, 3});
    if (out.numel() == 0) return out;
    launch_attention(attn::attention_params(q, k, v, key_mask, causal, scale, out), dt);
    return out;
}

}  // namespace

void register_attention_ops(Backend& b) { b.attention = attention; }

}  // namespace sdxl::cuda
