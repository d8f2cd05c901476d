// Emulator build only: bfloat16 for host C++, on the project's exact conversions (core/half.h):
// __float2bfloat16_rn rounds to nearest even; widening and bit casts are exact.
#pragma once

#include <cstdint>

#include "core/half.h"

struct __nv_bfloat16 {
    unsigned short __x;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

inline float __bfloat162float(__nv_bfloat16 h) { return sdxl::bf16_to_f32(h.__x); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{sdxl::f32_to_bf16(f)}; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16{u}; }
inline short __bfloat16_as_short(__nv_bfloat16 h) { return short(h.__x); }
inline __nv_bfloat16 __short_as_bfloat16(short s) { return __nv_bfloat16{static_cast<unsigned short>(s)}; }
