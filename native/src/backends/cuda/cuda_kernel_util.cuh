// Device-side helpers shared by the kernels of this backend (.cu files only): element load/store with the
// exact rounding of core/half.h, dtype dispatch to templates, grid sizing and block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

namespace sdxl::cuda {

// ---- element access: every kernel computes in float; loads are exact, stores round to nearest even.
// NaN encodings follow core/half.h bit for bit (payload kept on widening, canonical quiet NaN on narrowing)
// so that device conversion and the CPU's copy_cpu agree exactly.

__device__ __forceinline__ float load_f(const float* p) { return *p; }
__device__ __forceinline__ float load_f(const int64_t* p) { return float(*p); }
__device__ __forceinline__ float load_f(const __half* p) {
    const unsigned short h = __half_as_ushort(*p);
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))  // NaN: keep sign and payload as f16_to_f32 does
        return __uint_as_float((uint32_t(h & 0x8000) << 16) | 0x7f800000u | (uint32_t(h & 0x3ff) << 13));
    return __half2float(*p);  // exact (normals, subnormals, inf)
}
__device__ __forceinline__ float load_f(const __nv_bfloat16* p) {
    return __uint_as_float(uint32_t(__bfloat16_as_ushort(*p)) << 16);  // exact, NaN payload kept
}

__device__ __forceinline__ void store_f(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f(int64_t* p, float v) { *p = int64_t(v); }  // truncation, as copy_cpu
__device__ __forceinline__ void store_f(__half* p, float v) {
    // cvt.rn.f16.f32 is round-to-nearest-even incl. subnormals and overflow to inf, as f32_to_f16.
    if (isnan(v)) *p = __ushort_as_half(uint16_t(((__float_as_uint(v) >> 16) & 0x8000) | 0x7e00));
    else *p = __float2half_rn(v);
}
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float v) {
    // Integer rounding identical to f32_to_bf16 (no reliance on the intrinsic's NaN encoding).
    uint32_t x = __float_as_uint(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        *p = __ushort_as_bfloat16(uint16_t(0x7fc0));
        return;
    }
    x += 0x7fffu + ((x >> 16) & 1u);
    *p = __ushort_as_bfloat16(uint16_t(x >> 16));
}

// ---- dtype dispatch: fn(Tag<T>{}) with T the element type of `dt`.
template <typename T>
struct Tag {
    using type = T;
};

template <typename Fn>
void dispatch_float(DType dt, const char* what, Fn&& fn) {
    switch (dt) {
        case DType::F32: fn(Tag<float>{}); return;
        case DType::F16: fn(Tag<__half>{}); return;
        case DType::BF16: fn(Tag<__nv_bfloat16>{}); return;
        default: fail(ErrorCode::UNSUPPORTED, what, " on cuda: dtype ", dtype_name(dt), " is not F32/F16/BF16");
    }
}

template <typename Fn>
void dispatch_any(DType dt, const char* what, Fn&& fn) {
    if (dt == DType::I64) {
        fn(Tag<int64_t>{});
        return;
    }
    dispatch_float(dt, what, static_cast<Fn&&>(fn));
}

// ---- launch geometry
constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never above the grid limit.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
    const int64_t b = (n + threads - 1) / threads;
    return unsigned(b < 65535 * 16 ? (b < 1 ? 1 : b) : 65535 * 16);
}

// Global thread index and stride of a 1-D grid-stride loop, in 64 bits (sizes may exceed 2^31).
__device__ __forceinline__ int64_t gs_begin() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t gs_stride() { return int64_t(gridDim.x) * blockDim.x; }

// ---- reductions (blockDim.x a multiple of 32, at most 1024). Every thread gets the block's result.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// `scratch` holds 32 floats of shared memory; the trailing __syncthreads lets the caller reuse it at once.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    v = kMax ? warp_max(v) : warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = lane < nwarps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
    r = kMax ? warp_max(r) : warp_sum(r);  // every warp reduces the per-warp results itself: no 2nd broadcast
    __syncthreads();
    return r;
}
__device__ __forceinline__ float block_sum(float v, float* scratch) { return block_reduce<false>(v, scratch); }
__device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce<true>(v, scratch); }

}  // namespace sdxl::cuda
