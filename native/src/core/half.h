// Exact conversions between float and IEEE binary16 / bfloat16 (round to nearest, ties to even).
// NaN stays NaN (canonical quiet NaN as torch produces it), +-Inf stays +-Inf, subnormals are exact.
// 8-bit floats (fp8 checkpoints) are only ever widened: float8_e4m3fn and float8_e5m2 -> float, exactly.
#pragma once

#include <cstdint>
#include <cstring>

namespace sdxl {

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline float f16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // Inf / NaN (payload kept)
    if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return bits_float(sign);  // +-0
    // Subnormal: value = mant * 2^-24; normalise so the leading 1 becomes the implicit bit.
    int shift = 0;
    while ((mant & 0x400) == 0) {
        mant <<= 1;
        ++shift;
    }
    mant &= 0x3ff;
    return bits_float(sign | uint32_t(113 - shift) << 23 | (mant << 13));
}

inline uint16_t f32_to_f16(float f) {
    uint32_t x = float_bits(f);
    uint16_t sign = uint16_t((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;  // NaN -> canonical quiet NaN, sign kept (as torch)
    if (ax >= 0x47800000u) return sign | 0x7c00;  // >= 2^16 (and Inf): overflow
    if (ax >= 0x38800000u) {                      // normal half range (>= 2^-14)
        uint32_t h = ((ax >> 23) - 112) << 10 | ((ax >> 13) & 0x3ff);
        uint32_t rem = ax & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // carry may roll into the exponent / Inf
        return sign | uint16_t(h);
    }
    if (ax <= 0x33000000u) return sign;  // <= 2^-25 rounds (ties to even) to zero
    // Subnormal half: value / 2^-24 = m * 2^(E-126) with m the 24-bit significand.
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // 14..24
    uint32_t h = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return sign | uint16_t(h);
}

inline float bf16_to_f32(uint16_t b) { return bits_float(uint32_t(b) << 16); }

inline uint16_t f32_to_bf16(float f) {
    uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN -> canonical quiet NaN (as torch)
    x += 0x7fff + ((x >> 16) & 1);
    return uint16_t(x >> 16);
}

// float8_e5m2: IEEE-style (sign, 5 exponent bits with bias 15, 2 mantissa bits, Inf and NaN), i.e. exactly the upper
// byte of a binary16.
inline float f8e5m2_to_f32(uint8_t b) { return f16_to_f32(uint16_t(uint16_t(b) << 8)); }

// float8_e4m3fn: sign, 4 exponent bits with bias 7, 3 mantissa bits; no infinities, S.1111.111 is NaN (so the
// largest value is 1.75 * 2^8 = 448); exponent 0 holds the subnormals m * 2^-9.
inline float f8e4m3fn_to_f32(uint8_t b) {
    const uint32_t sign = uint32_t(b & 0x80) << 24;
    const uint32_t exp = (b >> 3) & 0xf;
    uint32_t mant = b & 0x7;
    if (exp == 0xf && mant == 0x7) return bits_float(sign | 0x7fc00000u);  // NaN
    if (exp != 0) return bits_float(sign | ((exp + 120) << 23) | (mant << 20));  // rebias 7 -> 127
    if (mant == 0) return bits_float(sign);                                      // +-0
    // Subnormal m * 2^-9 (m = 1..7): shift the leading 1 into the implicit bit.
    uint32_t e = 127 - 6;  // 0.mmm * 2^-6: each shift halves the exponent
    while ((mant & 0x8) == 0) {
        mant <<= 1;
        --e;
    }
    return bits_float(sign | (e << 23) | ((mant & 0x7) << 20));
}

}  // namespace sdxl
