// Float kernels shared by the CPU ops: an exp that the compiler can vectorise (std::exp is a library call
// per element, which made it ~40% of attention time) and the softmax row pieces built on it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace sdxl::cpu {

// e^x within 2 ulp of the correctly rounded result for x in [-86, 88.7] (checked in test_ops.cpp against
// double exp); 0 below -86 (true value < 4.5e-38), +inf above 88.72, NaN for NaN.
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a degree-7 Taylor polynomial (remainder < 1e-8).
// Written without branches (clamps and special cases are integer-mask selects; n is read from the bits of
// the rounding sum): GCC, with its default -ftrapping-math, vectorises only that shape. A NaN flows through
// the arithmetic and is restored from x at the end.
inline float fast_exp(float x) {
    const float lo = -86.0f, hi = 88.72f;
    const bool is_nan = x != x, above = x > hi, below = x < lo;
    int32_t xb, lob, hib;
    std::memcpy(&xb, &x, 4);
    std::memcpy(&lob, &lo, 4);
    std::memcpy(&hib, &hi, 4);
    const int32_t m_below = -int32_t(below), m_above = -int32_t(above), m_nan = -int32_t(is_nan);
    int32_t xcb = (xb & ~m_below) | (lob & m_below);  // clamp to [lo, hi] (integer selects: no branches)
    xcb = (xcb & ~m_above) | (hib & m_above);
    float xc;
    std::memcpy(&xc, &xcb, 4);
    const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer, held in the low bits
    const float t = xc * 1.44269504088896341f + magic;
    const float fn = t - magic;
    uint32_t tb;  // unsigned: a NaN's bits give garbage here, but no undefined behaviour
    std::memcpy(&tb, &t, 4);
    const uint32_t n = tb - 0x4b400000u;  // round(x / ln2) (mod 2^32): t's bits minus magic's bits
    const float r = (xc - fn * 0.693145751953125f) - fn * 1.42860682030941723212e-6f;  // ln2 split hi + lo
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // 2^n built as 2^(n-1) * 2 so that n = 128 (x close to 88.72) stays finite.
    const uint32_t sbits = (n - 1u + 127u) << 23;
    float scale;
    std::memcpy(&scale, &sbits, 4);
    const float y = p * scale * 2.0f;
    int32_t yb;
    std::memcpy(&yb, &y, 4);
    yb &= ~m_below;                                         // 0 below the range
    yb = (yb & ~m_above) | (int32_t(0x7f800000) & m_above);  // +inf above it
    yb = (yb & ~m_nan) | (xb & m_nan);                      // NaN stays NaN
    float out;
    std::memcpy(&out, &yb, 4);
    return out;
}

// x * sigmoid(x), as silu and group_norm_silu compute it (one formula: the fused op matches bit for bit).
inline float silu_f(float x) { return x / (1.0f + fast_exp(-x)); }

// Max of s[0, n), n >= 1, in 8 independent lanes so that it vectorises.
inline float row_max(const float* s, int64_t n) {
    float m[8];
    for (int l = 0; l < 8; ++l) m[l] = s[0];
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; ++l) m[l] = m[l] < s[j + l] ? s[j + l] : m[l];
    for (; j < n; ++j) m[0] = m[0] < s[j] ? s[j] : m[0];
    float r = m[0];
    for (int l = 1; l < 8; ++l) r = r < m[l] ? m[l] : r;
    return r;
}

// s[j] = exp(s[j] - mx) in place; returns the sum. Float partial sums over blocks of 256 in 8 lanes,
// blocks added in double: relative error ~1e-7 even for rows of 16K entries.
inline double exp_sub_sum(float* s, int64_t n, float mx) {
    double total = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += 256) {
        const int64_t j1 = std::min(n, j0 + 256);
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8)
            for (int l = 0; l < 8; ++l) {
                const float e = fast_exp(s[j + l] - mx);
                s[j + l] = e;
                acc[l] += e;
            }
        for (; j < j1; ++j) {
            s[j] = fast_exp(s[j] - mx);
            acc[0] += s[j];
        }
        for (int l = 0; l < 8; ++l) total += double(acc[l]);
    }
    return total;
}

}  // namespace sdxl::cpu
