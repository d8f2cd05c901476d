// Core: exact f16/bf16 conversion (against a double-precision reference rounding), tensor views.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "check.h"
#include "core/half.h"
#include "core/tensor.h"

using namespace sdxl;

namespace {

// Reference rounding of a float to the nearest value of a binary format with `mant_bits` fraction bits and
// exponent range [emin, emax], ties to even, computed in double (exact for float inputs).
double round_to_format(double x, int mant_bits, int emin, int emax) {
    if (x == 0 || std::isinf(x)) return x;
    double ax = std::fabs(x);
    int e = std::ilogb(ax);
    if (e < emin) e = emin;  // subnormal range: fixed quantum
    double quantum = std::ldexp(1.0, e - mant_bits);
    double q = ax / quantum;
    double fl = std::floor(q);
    double rem = q - fl;
    double r = (rem > 0.5 || (rem == 0.5 && std::fmod(fl, 2.0) == 1.0)) ? fl + 1 : fl;
    double v = r * quantum;
    double max_finite = std::ldexp(2.0 - std::ldexp(1.0, -mant_bits), emax);
    if (v > max_finite) v = INFINITY;
    return std::copysign(v, x);
}

}  // namespace

SDXL_TEST(test_core_f16_every_bit_pattern_round_trips) {
    for (uint32_t h = 0; h < 65536; ++h) {
        float f = f16_to_f32(uint16_t(h));
        bool nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (nan) {
            CHECK_MSG(std::isnan(f), "half " << h);
            continue;
        }
        CHECK_MSG(f32_to_f16(f) == h, "half " << h << " -> " << f << " -> " << f32_to_f16(f));
        float b = bf16_to_f32(uint16_t(h));
        if (!std::isnan(b)) CHECK_MSG(f32_to_bf16(b) == h, "bf16 " << h);
    }
}

SDXL_TEST(test_core_f16_rounding_matches_reference) {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<uint32_t> bits;
    int checked = 0;
    for (int i = 0; i < 2000000; ++i) {
        // Bias exponents toward the half range (2^-26 .. 2^17) so subnormals, ties and overflow all occur.
        uint32_t u = bits(rng);
        if (i % 2 == 0) u = (u & 0x807fffffu) | (uint32_t(101 + (u >> 23) % 44) << 23);
        if (i % 7 == 0) u &= 0xffffe000u | (1u << 12);  // exact ties for the half rounding
        float f;
        std::memcpy(&f, &u, 4);
        if (std::isnan(f)) continue;
        double want = round_to_format(f, 10, -14, 15);
        float got = f16_to_f32(f32_to_f16(f));
        CHECK_MSG(got == want && std::signbit(got) == std::signbit(want), "f16 of " << f << ": " << got << " vs " << want);
        double want_b = round_to_format(f, 7, -126, 127);
        float got_b = bf16_to_f32(f32_to_bf16(f));
        CHECK_MSG(got_b == want_b, "bf16 of " << f << ": " << got_b << " vs " << want_b);
        ++checked;
    }
    CHECK(checked > 1000000);
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(65519.99f) == 0x7bff);
    CHECK(f32_to_f16(65520.0f) == 0x7c00);
    CHECK(f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(std::isnan(f16_to_f32(f32_to_f16(NAN))));
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(-NAN))));
    CHECK(f32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds up to Inf
    CHECK(f32_to_f16(5.9604645e-08f) == 0x0001);                       // smallest subnormal
    CHECK(f32_to_f16(2.9802322e-08f) == 0x0000);                       // half of it: tie to even (0)
}

SDXL_TEST(test_core_tensor_views_and_copies) {
    Tensor t = Tensor::empty({2, 3, 4}, DType::F32);
    float* p = t.data<float>();
    for (int i = 0; i < 24; ++i) p[i] = float(i);
    Tensor v = t.permute({2, 0, 1});  // [4, 2, 3]
    CHECK(!v.is_contiguous());
    CHECK(v.storage() == t.storage());
    Tensor c = v.contiguous();
    CHECK(c.is_contiguous());
    const float* cp = c.data<float>();
    for (int k = 0; k < 4; ++k)
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 3; ++j) CHECK(cp[(k * 2 + i) * 3 + j] == float(12 * i + 4 * j + k));
    Tensor n = t.narrow(1, 1, 2);  // [2, 2, 4]
    CHECK(n.data<float>()[0] == 4.0f);
    Tensor h = n.to(DType::F16).to(DType::F32);
    CHECK(h.shape() == Shape({2, 2, 4}));
    CHECK(h.data<float>()[7] == 11.0f);
    CHECK_THROWS_CODE(t.view({5, 5}), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(t.narrow(2, 3, 2), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(t.data<int64_t>(), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(Tensor::empty({-1, 2}, DType::F32), ErrorCode::INVALID_ARGUMENT);
    CHECK(t.view({6, -1}).shape() == Shape({6, 4}));
    CHECK(t.unsqueeze(0).shape() == Shape({1, 2, 3, 4}));
    CHECK(t.unsqueeze(-1).shape() == Shape({2, 3, 4, 1}));
}
