// Launchers of the CUDA attention kernels (cuda_attention.cu); the math is in cuda_attention_tile.h.
#pragma once

#include "backends/cuda/cuda_attention_tile.h"

namespace sdxl::cuda {

enum class AttnDType { F32, F16, BF16 };

// True when (D, Dv) has a flash instantiation (Dv == D and D in {32, 40, 64, 80}).
bool attention_uses_flash(int D, int Dv);

// Runs attention on the backend's stream: the flash kernel when attention_uses_flash(p.D, p.Dv), else the
// simple kernel. p.o must hold B * H * Lq * Dv elements of the dtype; q/k/v are of the same dtype.
void launch_attention(const attn::AttnParams& p, AttnDType dtype);

}  // namespace sdxl::cuda
