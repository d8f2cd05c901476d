// Emulator build only: IEEE binary16 for host C++, on the project's exact conversions (core/half.h). The
// intrinsics the kernels use, with the device's documented results: __float2half_rn rounds to nearest even
// (subnormals, overflow to inf); bit casts are exact. NaN payloads follow core/half.h.
#pragma once

#include <cstdint>

#include "core/half.h"

struct __half {
    unsigned short __x;
};
struct __half2 {
    __half x, y;
};

inline float __half2float(__half h) { return sdxl::f16_to_f32(h.__x); }
inline __half __float2half_rn(float f) { return __half{sdxl::f32_to_f16(f)}; }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
inline short __half_as_short(__half h) { return short(h.__x); }
inline __half __short_as_half(short s) { return __half{static_cast<unsigned short>(s)}; }
inline bool __hisnan(__half h) { return (h.__x & 0x7c00) == 0x7c00 && (h.__x & 0x3ff) != 0; }
