// One entry point per op. Each validates its arguments once (op name + shapes in the message) and
// dispatches to the backend of the inputs' device (backends/backend.h). Outputs are new contiguous
// tensors on the same device. Float ops take F32 on the CPU backend: other dtypes are INVALID_ARGUMENT
// (widen with Tensor::to(DType::F32)); on CUDA, F32/F16/BF16 reach the backend, which may answer
// UNSUPPORTED for a dtype it lacks. All float inputs of one call share one dtype and one device.
//
// Shapes follow PyTorch (outermost first). Optional tensors are passed as an undefined Tensor().
#pragma once

#include <vector>

#include "core/tensor.h"

namespace sdxl::ops {

// ---- matrix products
// y = x @ w^T + b + residual.  x [..., in], w [out, in], b [out] or undefined, residual [..., out] (exactly the
// output's shape, any strides, no broadcasting) or undefined  ->  [..., out]
// The residual is fused into the GEMM's epilogue where the backend can (cuBLASLt on CUDA); the result is that
// of ops::add(residual, linear(x, w, b)) (on the cpu bit for bit).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual = Tensor());
// Batched matmul with broadcasting of the batch dims (like torch.matmul for >= 2-D inputs):
// a [..., M, K], b [..., K, N] -> [..., M, N]. Transposed views (e.g. k.transpose(-1, -2)) are used
// without a copy where the backend can.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- convolution / resampling
// x [N, C, H, W], w [O, C, kh, kw], b [O] or undefined. Symmetric zero padding.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding);
// conv2d(x, w, b) + sample_bias[:, :, None, None] + residual, the epilogues of a ResNet block's convolutions
// (the time embedding after conv1, the shortcut after conv2) fused where the backend can (CUDA: the
// convolution accumulates onto one pre-filled pass instead of two extra add passes). sample_bias [N, O] or
// undefined; residual [N, O, Ho, Wo] (any strides) or undefined. Otherwise the same sums as
// add(residual, add(conv2d(x, w, b), sample_bias[:, :, None, None])), on the cpu bit for bit.
Tensor conv2d_fused(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding,
                    const Tensor& sample_bias, const Tensor& residual);
// Nearest-neighbour upsampling to an explicit size (torch "nearest": src = floor(dst * in / out)).
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);
// x2 shorthand: upsample_nearest(x, 2H, 2W).
Tensor upsample_nearest2x(const Tensor& x);

// ---- normalisation
// x [N, C, *], gamma/beta [C] or undefined. Statistics per (n, group) over C/groups * spatial.
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
// silu(group_norm(x)), the norm + activation of the ResNet blocks, in one pass where the backend fuses it.
// Same arguments, checks and result as group_norm followed by silu (on the cpu bit for bit).
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
// Over the last dimension; gamma/beta [D] or undefined.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);

// ---- activations (elementwise)
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);        // exact: 0.5 x (1 + erf(x / sqrt 2))
Tensor gelu_tanh(const Tensor& x);   // tanh approximation
Tensor quick_gelu(const Tensor& x);  // x * sigmoid(1.702 x)  (CLIP)
// GEGLU of diffusers: h, gate = x.chunk(2, -1); h * gelu(gate).  x [..., 2D] -> [..., D]
Tensor geglu(const Tensor& x);
Tensor softmax(const Tensor& x);     // over the last dimension

// ---- attention
// q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] -> [B, H, Lq, Dv].
// softmax(q k^T * scale + mask) v with scale = 1/sqrt(D) when scale <= 0 (resolved here: backends
// always receive the scale to use).
// key_mask: undefined, or [B, Lk] (F32 or I64): nonzero = attend, zero = masked out.
// causal: query i attends to keys j <= i (CLIP's text encoder).
// A query row with every key masked gives zeros (no NaN).
// The result may be a view: the CUDA backend writes it in [B, Lq, H, Dv] memory order so that merging the
// heads (permute(0, 2, 1, 3) + reshape to [B, Lq, H*Dv]) needs no copy; the cpu returns it contiguous.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                 float scale);

// ---- elementwise arithmetic with numpy/torch broadcasting
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float alpha, float beta);  // alpha * x + beta

// ---- layout
Tensor concat(const std::vector<Tensor>& parts, int dim);
// A view: x.narrow(dim, start, length). Provided here so bindings have one place for layout ops.
Tensor slice(const Tensor& x, int dim, int64_t start, int64_t length);

// ---- embeddings
// diffusers get_timestep_embedding: t [N] (F32 or I64) -> [N, dim].
// exponent_i = -ln(max_period) * i / (half - downscale_freq_shift), emb = scale * t * exp(exponent),
// [sin, cos] (or [cos, sin] with flip_sin_to_cos); zero column appended when dim is odd.
Tensor timestep_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float scale, float max_period);

}  // namespace sdxl::ops
