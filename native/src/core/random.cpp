// torch-compatible normal draws; see random.h for the algorithm and where each rule comes from.
//
// Bit-exactness rules for this file: every float operation below rounds to float after each step, in the
// order written, and the FMAs that torch's build has are written out as std::fma. CMakeLists.txt compiles
// it with -ffp-contract=off (GCC would otherwise fuse other a*b+c pairs on targets that have FMA, e.g.
// aarch64 or -march=haswell, changing last bits), and the static_assert rejects x87-style excess precision.
#include "core/random.h"

#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/error.h"

static_assert(FLT_EVAL_METHOD == 0, "random.cpp needs float arithmetic evaluated in float (no excess precision)");

namespace sdxl {

namespace {

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Constants as avx_mathfun.h declares them: decimal literals parsed as double, then converted to float
// (a direct float literal could round differently in rare cases, so keep the two-step conversion).
const float kOne = 1.0f;
const float kHalf = 0.5f;
const float kSqrtHalf = static_cast<float>(0.707106781186547524);
const float kLogP[9] = {
    static_cast<float>(7.0376836292E-2),  static_cast<float>(-1.1514610310E-1), static_cast<float>(1.1676998740E-1),
    static_cast<float>(-1.2420140846E-1), static_cast<float>(1.4249322787E-1),  static_cast<float>(-1.6668057665E-1),
    static_cast<float>(2.0000714765E-1),  static_cast<float>(-2.4999993993E-1), static_cast<float>(3.3333331174E-1)};
const float kLogQ1 = static_cast<float>(-2.12194440e-4);
const float kLogQ2 = static_cast<float>(0.693359375);
const float kMinusDP1 = static_cast<float>(-0.78515625);
const float kMinusDP2 = static_cast<float>(-2.4187564849853515625e-4);
const float kMinusDP3 = static_cast<float>(-3.77489497744594108e-8);
const float kSinP0 = static_cast<float>(-1.9515295891E-4);
const float kSinP1 = static_cast<float>(8.3321608736E-3);
const float kSinP2 = static_cast<float>(-1.6666654611E-1);
const float kCosP0 = static_cast<float>(2.443315711809948E-005);
const float kCosP1 = static_cast<float>(-1.388731625493765E-003);
const float kCosP2 = static_cast<float>(4.166664568298827E-002);
const float kFourOverPi = static_cast<float>(1.27323954473516);
// normal_fill_AVX2's two_pi: 2.0f * c10::pi<double> evaluated in double, then set as a float.
const float kTwoPi = static_cast<float>(2.0f * 3.14159265358979323846);

// avx_mathfun's log256_ps for one lane (x > 0 here: x = 1 - u with u in [0, 1)). Cephes logf: split x into
// mantissa in [sqrt(1/2), sqrt(2)) and exponent, polynomial in (mantissa - 1).
//
// torch's AVX2 kernels are built by GCC with -mfma and its default -ffp-contract=fast, and the intrinsics are
// plain vector * and +, so GCC fused every multiply whose only use is an add/sub into an FMA. The FMAs
// below are exactly those (std::fma rounds once, on every platform); every other operation is a separately
// rounded float op. The reference data tells the fused and unfused variants apart (cases/rng): only this
// one matches all of it.
float cephes_logf(float x) {
    if (!(x > 0.0f)) return std::nanf("");  // the vector code ORs an all-ones mask in: NaN
    if (x < FLT_MIN) x = FLT_MIN;            // _mm256_max_ps with the smallest normal: denormals cut off
    uint32_t u = bits_of(x);
    int32_t exponent = int32_t(u >> 23) - 0x7f;
    x = float_of((u & ~0x7f800000u) | bits_of(kHalf));  // mantissa scaled into [0.5, 1)
    float e = static_cast<float>(exponent);
    e = e + kOne;
    bool small = x < kSqrtHalf;
    float tmp = small ? x : 0.0f;  // masks select x or +0, then the adds below run in every lane
    x = x - kOne;
    e = e - (small ? kOne : 0.0f);
    x = x + tmp;
    float z = x * x;
    float y = kLogP[0];
    for (int k = 1; k < 9; ++k) y = std::fma(y, x, kLogP[k]);
    y = y * x;
    // y * z + e * q1: both sides are products; GCC fused the one computed first (y * z).
    y = std::fma(y, z, e * kLogQ1);
    y = std::fma(-z, kHalf, y);  // y - z * 0.5 (the product is exact either way)
    x = x + y;
    x = std::fma(e, kLogQ2, x);
    return x;
}

// avx_mathfun's sincos256_ps for one lane: Cephes sinf/cosf with the 3-part Pi/4 reduction, both
// polynomials evaluated and the right one picked per octant by masks (reproduced, including the +0 adds).
// FMAs as in cephes_logf.
void cephes_sincosf(float x, float* s, float* c) {
    uint32_t sign_sin = bits_of(x) & 0x80000000u;
    x = float_of(bits_of(x) & 0x7fffffffu);
    float y = x * kFourOverPi;
    int32_t j = static_cast<int32_t>(y);  // _mm256_cvttps_epi32: truncation (0 <= theta < 2 pi here)
    j = (j + 1) & ~1;
    y = static_cast<float>(j);
    uint32_t swap_sign_sin = uint32_t(j & 4) << 29;
    bool first_poly = (j & 2) == 0;
    // x - y * (DP1 + DP2 + DP3): extended-precision reduction by Pi/4.
    x = std::fma(y, kMinusDP1, x);
    x = std::fma(y, kMinusDP2, x);
    x = std::fma(y, kMinusDP3, x);
    uint32_t sign_cos = uint32_t(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sign_sin;

    float z = x * x;
    float yc = std::fma(kCosP0, z, kCosP1);  // cosine polynomial, 0 <= x <= Pi/4
    yc = std::fma(yc, z, kCosP2);
    yc = yc * z;
    yc = std::fma(yc, z, -(z * kHalf));
    yc = yc + kOne;

    float ys = std::fma(kSinP0, z, kSinP1);  // sine polynomial
    ys = std::fma(ys, z, kSinP2);
    ys = ys * z;
    ys = std::fma(ys, x, x);

    float ysin2 = first_poly ? ys : 0.0f;
    float ysin1 = first_poly ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    *s = float_of(bits_of(ysin1 + ysin2) ^ sign_sin);
    *c = float_of(bits_of(yc + ys) ^ sign_cos);
}

// normal_fill_16_AVX2 with mean 0, std 1: 16 uniforms in place -> 16 normals.
void box_muller_16(float* d) {
    for (int j = 0; j < 8; ++j) {
        float u1 = kOne - d[j];  // [0, 1) -> (0, 1] for the log
        float u2 = d[j + 8];
        float radius = std::sqrt(-2.0f * cephes_logf(u1));  // sqrtps is correctly rounded, like std::sqrt
        float theta = kTwoPi * u2;
        float sin_t, cos_t;
        cephes_sincosf(theta, &sin_t, &cos_t);
        // torch stores fmadd(r * cos, std, mean) = r * cos + 0: the + 0.0f turns a -0 into +0 the same way.
        d[j] = radius * cos_t + 0.0f;
        d[j + 8] = radius * sin_t + 0.0f;
    }
}

}  // namespace

void Generator::manual_seed(uint64_t seed) {
    seed_ = seed;
    engine_.seed(static_cast<uint32_t>(seed & 0xffffffffu));
    has_cached_normal_ = false;
    cached_normal_ = 0.0;
}

uint32_t Generator::random() { return static_cast<uint32_t>(engine_()); }

uint64_t Generator::random64() {
    uint64_t hi = random();
    uint64_t lo = random();
    return (hi << 32) | lo;
}

double Generator::normal_double() {
    if (has_cached_normal_) {
        has_cached_normal_ = false;
        return cached_normal_ + 0.0;  // transformation::normal(x, mean 0, std 1) = x * 1 + 0
    }
    // uniform_real_distribution<double>(0, 1): the low 53 bits of a 64-bit draw, times 2^-53.
    const double scale53 = 1.0 / 9007199254740992.0;
    double u1 = double(random64() & ((uint64_t(1) << 53) - 1)) * scale53;
    double u2 = double(random64() & ((uint64_t(1) << 53) - 1)) * scale53;
    // log1p(-u2) (torch >= 2) and log(1 - u2) (1.13) see the same exact argument: 1 - u2 is exact here.
    double r = std::sqrt(-2.0 * std::log1p(-u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    cached_normal_ = r * std::sin(theta);
    has_cached_normal_ = true;
    return r * std::cos(theta) + 0.0;
}

void Generator::randn(float* out, int64_t n) {
    SDXL_CHECK(n >= 0, "randn: negative element count ", n);
    if (n == 0) return;
    SDXL_CHECK(out != nullptr, "randn: null output");
    if (n < 16) {
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(normal_double());
        return;
    }
    // uniform_real_distribution<float>(0, 1): the low 24 bits of a 32-bit draw, times 2^-24 (exact).
    const float scale24 = 1.0f / 16777216.0f;
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(random() & 0xffffffu) * scale24;
    for (int64_t i = 0; i + 16 <= n; i += 16) box_muller_16(out + i);
    if (n % 16 != 0) {
        // torch redraws the last 16 slots (the trailing partial block plus some already-final values).
        float* tail = out + n - 16;
        for (int k = 0; k < 16; ++k) tail[k] = static_cast<float>(random() & 0xffffffu) * scale24;
        box_muller_16(tail);
    }
}

Tensor Generator::randn(const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::F32);
    if (t.numel() > 0) randn(t.data<float>(), t.numel());
    return t;
}

}  // namespace sdxl
