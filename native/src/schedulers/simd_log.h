// Scalar, bit-exact emulations of the float32 logarithms the diffusers reference (numpy 1.24 / torch 1.13 CPU on
// x86_64 AVX2+FMA) computes with SIMD kernels that are not correctly rounded:
//
//  * np_logf:    numpy's AVX2/AVX512F float32 log kernel (loops_exponent_log.dispatch.c.src, simd_log_FLOAT):
//                mantissa/exponent split, a 5/5 rational minimax approximation of log(1 + x) evaluated with FMA
//                Horner steps, one division, then exponent * ln2 added with one more FMA.
//  * sleef_logf: SLEEF's Sleef_logf8_u10 (xlogf_u1, AVX2 build with FMA) behind torch's Vectorized<float>::log:
//                double-float (two-float) evaluation of 2 * atanh((m - 1) / (m + 1)) plus e * ln2.
//  * sleef_expf: SLEEF's Sleef_expf8_u10 (xexpf, AVX2 build with FMA) behind torch's Vectorized<float>::exp,
//                which torch uses even for a 0-dim float32 tensor (vml::vexp maps the partial vector):
//                q = rint(d / ln2), Cody-Waite reduction by ln2 in two parts, a degree-6 polynomial, 2^q.
//
// Files in this folder are compiled with -ffp-contract=off, so each operator below rounds once, and the fused
// steps of the SIMD code are written as std::fma.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace sdxl::schedulers::simdlog {

inline uint32_t f2u(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float u2f(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// np.log on float32 data (numpy 1.24, AVX2 + FMA3 / AVX512F dispatch).
inline float np_logf(float x_in) {
    if (std::isnan(x_in)) return std::numeric_limits<float>::quiet_NaN();
    if (x_in < 0.0f) return -std::numeric_limits<float>::quiet_NaN();
    if (x_in == 0.0f) return -std::numeric_limits<float>::infinity();
    if (std::isinf(x_in)) return std::numeric_limits<float>::infinity();

    const float p0 = 0.000000000000000000000e+00f, p1 = 9.999999999999998702752e-01f,
                p2 = 2.112677543073053063722e+00f, p3 = 1.480000633576506585156e+00f,
                p4 = 3.808837741388407920751e-01f, p5 = 2.589979117907922693523e-02f;
    const float q0 = 1.000000000000000000000e+00f, q1 = 2.612677543073109236779e+00f,
                q2 = 2.453006071784736363091e+00f, q3 = 9.864942958519418960339e-01f,
                q4 = 1.546476374983906719538e-01f, q5 = 5.875095403124574342950e-03f;
    const float loge2 = 0.693147180559945309417232121458176568f;
    const float sqrt1_2 = 0.707106781186547524400844362104849039f;

    float x = x_in;
    const bool denormal = x < std::numeric_limits<float>::min();
    if (denormal) x = x * u2f(0x71800000u);  // * 2^100
    const uint32_t bits = f2u(x);
    float exponent = float(int32_t(bits >> 23) - 0x7E);
    if (denormal) exponent = exponent - 100.0f;
    x = u2f((bits & 0x7fffffu) | (126u << 23));  // mantissa in [0.5, 1)

    if (x <= sqrt1_2) {
        x = x + x;
        exponent = exponent - 1.0f;
    }
    x = x - 1.0f;

    float num = std::fma(p5, x, p4);
    num = std::fma(num, x, p3);
    num = std::fma(num, x, p2);
    num = std::fma(num, x, p1);
    num = std::fma(num, x, p0);
    float den = std::fma(q5, x, q4);
    den = std::fma(den, x, q3);
    den = std::fma(den, x, q2);
    den = std::fma(den, x, q1);
    den = std::fma(den, x, q0);
    const float poly = num / den;
    return std::fma(exponent, loge2, poly);
}

// Sleef_logf8_u10 (torch.Tensor.log on float32 CPU tensors, AVX2 build).
inline float sleef_logf(float d) {
    const float flt_min = std::numeric_limits<float>::min();
    const bool o = d < flt_min;
    float dd = o ? d * (float(int64_t(1) << 32) * float(int64_t(1) << 32)) : d;
    // vilogb2k: biased exponent of d * (1 / 0.75) minus 127
    int32_t e = int32_t((f2u(dd * (1.0f / 0.75f)) >> 23) & 0xff) - 0x7f;
    // vldexp3: add -e to the exponent field
    const float m = u2f(uint32_t(int32_t(f2u(dd)) + int32_t(uint32_t(-e) << 23)));
    if (o) e -= 64;
    const float ef = float(e);

    // s = dfmul((ln2 hi, ln2 lo), e)
    const float lhx = 0.69314718246459960938f, lhy = -1.904654323148236017e-09f;
    float sx = lhx * ef;
    float sy = std::fma(lhy, ef, std::fma(lhx, ef, -sx));

    // x = dfdiv(dfadd2(-1, m), dfadd2(1, m))
    auto dfadd2 = [](float a, float b, float& rx, float& ry) {
        const float s = a + b;
        const float v = s - a;
        rx = s;
        ry = (a - (s - v)) + (b - v);
    };
    float nx, ny, dx, dy;
    dfadd2(-1.0f, m, nx, ny);
    dfadd2(1.0f, m, dx, dy);
    const float t = 1.0f / dx;
    const float qs = nx * t;
    const float u = std::fma(t, nx, -qs);
    const float v = std::fma(-dy, t, std::fma(-dx, t, 1.0f));
    const float xx = qs;
    const float xy = std::fma(qs, v, std::fma(ny, t, u));

    const float x2 = xx * xx;
    float tp = 0.3027294874e+0f;
    tp = std::fma(tp, x2, 0.3996108174e+0f);
    tp = std::fma(tp, x2, 0.6666694880e+0f);

    // s = dfadd(s, dfscale(x, 2))   (|s| >= |y| variant: four-term low part)
    {
        const float yx = xx * 2.0f, yy = xy * 2.0f;
        const float nsx = sx + yx;
        const float nsy = (((sx - nsx) + yx) + sy) + yy;
        sx = nsx;
        sy = nsy;
    }
    // s = dfadd(s, x2 * x * t)
    {
        const float y = (x2 * xx) * tp;
        const float nsx = sx + y;
        const float nsy = ((sx - nsx) + y) + sy;
        sx = nsx;
        sy = nsy;
    }
    float r = sx + sy;
    if (std::isinf(d) && d > 0) r = std::numeric_limits<float>::infinity();
    if (d < 0.0f || std::isnan(d)) r = std::numeric_limits<float>::quiet_NaN();
    if (d == 0.0f) r = -std::numeric_limits<float>::infinity();
    return r;
}

// torch.exp on float32 CPU tensors (torch 1.13 / 2.x AVX2 kernels): Sleef_expf8_u10. Differs from the correctly
// rounded expf by one ulp for some inputs (about 1 in 10).
inline float sleef_expf(float d) {
    const float r_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
    const float l2u = 0.693145751953125f, l2l = 1.428606765330187045e-06f;
    const int32_t q = int32_t(std::nearbyint(d * r_ln2));  // vrint_vi2_vf: round to nearest even
    float s = std::fma(float(q), -l2u, d);
    s = std::fma(float(q), -l2l, s);
    float u = 0.000198527617612853646278381f;
    u = std::fma(u, s, 0.00139304355252534151077271f);
    u = std::fma(u, s, 0.00833336077630519866943359f);
    u = std::fma(u, s, 0.0416664853692054748535156f);
    u = std::fma(u, s, 0.166666671633720397949219f);
    u = std::fma(u, s, 0.5f);
    u = 1.0f + std::fma(s * s, u, s);
    // vldexp2: u * 2^(q >> 1) * 2^(q - (q >> 1))
    auto pow2i = [](int32_t e) { return u2f(uint32_t(e + 0x7f) << 23); };
    u = (u * pow2i(q >> 1)) * pow2i(q - (q >> 1));
    if (d < -104.0f) u = 0.0f;
    if (100.0f < d) u = std::numeric_limits<float>::infinity();
    if (std::isnan(d)) u = d;
    return u;
}

}  // namespace sdxl::schedulers::simdlog
