// Helpers shared by the native tests.
#pragma once

#include <cstdint>
#include <string>

#include "check.h"
#include "core/error.h"

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

// Expects f() to throw sdxl::Error with `code` and a message containing `part`.
template <typename F>
void expect_error(F&& f, sdxl::ErrorCode code, const std::string& part) {
    try {
        f();
        CHECK_MSG(false, "expected an error mentioning '" << part << "'");
    } catch (const sdxl::Error& e) {
        CHECK_MSG(e.code() == code, "wrong code: " << e.what());
        CHECK_MSG(e.message().find(part) != std::string::npos, "message lacks '" << part << "': " << e.what());
    }
}

}  // namespace sdxl_test
