// Helpers shared by the native tests.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace sdxl_test {

// Deterministic values in [lo, hi) (64-bit LCG), so failures reproduce.
inline sdxl::Tensor rnd(const sdxl::Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    sdxl::Tensor t = sdxl::Tensor::empty(shape, sdxl::DType::F32);
    float* p = t.data<float>();
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (int64_t i = 0; i < t.numel(); ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = lo + (hi - lo) * float((s >> 40) & 0xffffff) / float(1 << 24);
    }
    return t;
}

}  // namespace sdxl_test
