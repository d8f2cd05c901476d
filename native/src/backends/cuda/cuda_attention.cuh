// Launchers of the CUDA attention kernels (cuda_attention.cu); the math is in cuda_attention_tile.h.
#pragma once

#include "backends/cuda/cuda_attention_tile.h"

namespace sdxl::cuda {

enum class AttnDType { F32, F16, BF16 };

// True when (D, Dv) has a flash instantiation (Dv == D and D in {32, 40, 64, 80}).
bool attention_uses_flash(int D, int Dv);

// True when the tensor-core kernel (cuda_attention_mma.cu) takes p: F16/BF16, no key mask, not causal,
// Dv == D in {64, 80}, Lq and Lk > 0, q/k/v with unit stride along d and 16-byte aligned rows (base and the
// strides of dims larger than 1 multiples of 8 elements), and the device's shared-memory opt-in large enough.
bool attention_uses_mma(const attn::AttnParams& p, AttnDType dtype);

// The tensor-core kernel alone (cuda_attention_mma.cu); only for p where attention_uses_mma(p, dtype).
void launch_attention_mma(const attn::AttnParams& p, AttnDType dtype);

// Runs attention on the backend's stream: the tensor-core kernel when attention_uses_mma(p, dtype), else the
// SIMT flash kernel when attention_uses_flash(p.D, p.Dv), else the simple kernel. p.o must hold
// B * H * Lq * Dv elements of the dtype; q/k/v are of the same dtype.
void launch_attention(const attn::AttnParams& p, AttnDType dtype);

}  // namespace sdxl::cuda
