// Params structs and launchers of the data-movement kernels: strided copy with dtype conversion (behind
// Tensor::contiguous/clone/to(DType) on CUDA and concat), nearest upsampling, the timestep embedding.
// Plain C++ (no CUDA types): the op tables (.cpp) include it. All launches run on sdxl::cuda::stream().
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace sdxl::cuda {

constexpr int kMaxCopyDims = 8;

// dst[idx] = convert(src[idx]) for every index of `shape`, each side with its own element strides.
// dtypes: any of F32/F16/BF16/I64 on either side (same dtype: a bit copy; float narrowing rounds to
// nearest even as core/half.h). src and dst must not overlap.
struct CopyParams {
    const void* src;
    void* dst;
    DType src_dtype, dst_dtype;
    int ndim;  // any; dims are merged where both sides allow, leading dims beyond kMaxCopyDims loop on the host
    const int64_t* shape;
    const int64_t* src_strides;
    const int64_t* dst_strides;
};
void launch_copy(const CopyParams& p);

// x [planes, H, W] contiguous -> y [planes, out_h, out_w]; torch 'nearest': src = min(floor(dst * (in/out)), in-1)
// computed in float (out == 2 in: dst >> 1), exactly as the CPU backend.
struct UpsampleParams {
    const void* x;
    void* y;
    DType dtype;  // F32/F16/BF16
    int64_t planes, in_h, in_w, out_h, out_w;
};
void launch_upsample_nearest(const UpsampleParams& p);

// y [n, dim] F32: y[r, sin_at + i] = sin(scale * (t[r] * freq[i])), cos likewise; a zero last column when
// dim is odd. freq [half] F32 on the device (computed on the host as the CPU backend does, so the large
// arguments of sin/cos agree bit for bit). t: F32 or I64 [n] contiguous.
struct TimestepParams {
    const void* t;
    DType t_dtype;
    const float* freq;
    float* y;
    int64_t n, dim, half;
    bool flip_sin_to_cos;
    float scale;
};
void launch_timestep_embedding(const TimestepParams& p);

}  // namespace sdxl::cuda
