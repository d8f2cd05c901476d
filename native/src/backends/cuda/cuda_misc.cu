// Data-movement kernels: strided copy/convert (also core/device.h's cuda_strided_copy and cuda_convert),
// nearest upsampling and the timestep embedding. See cuda_misc.cuh for the contracts.
#include <cuda_runtime.h>

#include <vector>

#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_kernel_util.cuh"
#include "backends/cuda/cuda_misc.cuh"
#include "core/counter_random.h"
#include "core/device.h"

namespace sdxl::cuda {

namespace {

// ------------------------------------------------------------------------------------------- strided copy

// At most kMaxCopyDims merged dims; passed by value (kernel parameter space).
struct CopyKernelParams {
    const void* src;
    void* dst;
    int64_t numel;
    int ndim;  // >= 1
    int64_t shape[kMaxCopyDims];
    int64_t src_strides[kMaxCopyDims];
    int64_t dst_strides[kMaxCopyDims];
};

// Element offsets of linear index i (row-major over shape) on both sides. Dim 0 needs no division: i < numel.
__device__ __forceinline__ void copy_offsets(const CopyKernelParams& p, int64_t i, int64_t& so, int64_t& dof) {
    int64_t rem = i;
    so = 0;
    dof = 0;
    for (int d = p.ndim - 1; d > 0; --d) {
        const int64_t q = rem / p.shape[d];
        const int64_t idx = rem - q * p.shape[d];
        rem = q;
        so += idx * p.src_strides[d];
        dof += idx * p.dst_strides[d];
    }
    so += rem * p.src_strides[0];
    dof += rem * p.dst_strides[0];
}

// Same dtype: a bit copy through an unsigned type of the element's size.
template <typename U>
__global__ void copy_bits_kernel(CopyKernelParams p) {
    const U* src = static_cast<const U*>(p.src);
    U* dst = static_cast<U*>(p.dst);
    for (int64_t i = gs_begin(); i < p.numel; i += gs_stride()) {
        int64_t so, dof;
        copy_offsets(p, i, so, dof);
        dst[dof] = src[so];
    }
}

template <typename S, typename D>
__global__ void convert_kernel(CopyKernelParams p) {
    const S* src = static_cast<const S*>(p.src);
    D* dst = static_cast<D*>(p.dst);
    for (int64_t i = gs_begin(); i < p.numel; i += gs_stride()) {
        int64_t so, dof;
        copy_offsets(p, i, so, dof);
        store_f(dst + dof, load_f(src + so));
    }
}

void launch_copy_kernel(const CopyKernelParams& p, DType sd, DType dd) {
    const unsigned grid = grid_for(p.numel);
    if (sd == dd) {
        switch (dtype_size(sd)) {
            case 2: launch(copy_bits_kernel<uint16_t>, grid, kThreads, 0, p); break;
            case 4: launch(copy_bits_kernel<uint32_t>, grid, kThreads, 0, p); break;
            case 8: launch(copy_bits_kernel<uint64_t>, grid, kThreads, 0, p); break;
            default: fail(ErrorCode::INTERNAL, "copy on cuda: unexpected element size of ", dtype_name(sd));
        }
    } else {
        dispatch_any(sd, "copy", [&](auto s) {
            dispatch_any(dd, "copy", [&](auto d) {
                using S = typename decltype(s)::type;
                using D = typename decltype(d)::type;
                launch(convert_kernel<S, D>, grid, kThreads, 0, p);
            });
        });
    }
    SDXL_CUDA_CHECK(cudaGetLastError());
}

// ------------------------------------------------------------------------------------------- upsample

template <typename U>
__global__ void upsample_nearest_kernel(const U* x, U* y, int64_t numel, int64_t in_h, int64_t in_w, int64_t out_h,
                                        int64_t out_w, float scale_h, float scale_w) {
    for (int64_t i = gs_begin(); i < numel; i += gs_stride()) {
        const int64_t ox = i % out_w, t = i / out_w;
        const int64_t oy = t % out_h, plane = t / out_h;
        // The CPU's nearest_src, in the same float operations (scale = float(in) / float(out) from the host).
        int64_t sy = in_h == out_h ? oy : out_h == 2 * in_h ? (oy >> 1) : int64_t(floorf(float(oy) * scale_h));
        int64_t sx = in_w == out_w ? ox : out_w == 2 * in_w ? (ox >> 1) : int64_t(floorf(float(ox) * scale_w));
        sy = sy < in_h - 1 ? sy : in_h - 1;
        sx = sx < in_w - 1 ? sx : in_w - 1;
        y[i] = x[(plane * in_h + sy) * in_w + sx];
    }
}

// ------------------------------------------------------------------------------------------- timestep embedding

template <typename T>
__global__ void timestep_embedding_kernel(TimestepParams p, const T* t) {
    const int64_t numel = p.n * p.dim;
    const int64_t sin_at = p.flip_sin_to_cos ? p.half : 0;
    for (int64_t i = gs_begin(); i < numel; i += gs_stride()) {
        const int64_t r = i / p.dim, c = i - r * p.dim;
        float v = 0.0f;  // the zero column of an odd dim
        if (c < 2 * p.half) {
            const int64_t j = c < p.half ? c : c - p.half;
            const float e = p.scale * (load_f(t + r) * p.freq[j]);  // as the CPU: scale * (t * freq)
            const bool is_sin = (c >= sin_at) && (c < sin_at + p.half);
            v = is_sin ? sinf(e) : cosf(e);
        }
        p.y[i] = v;
    }
}

// ------------------------------------------------------------------------------------------- random weights

template <typename T>
__global__ void counter_normal_kernel(T* dst, int64_t n, uint64_t base, float scale, float offset) {
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) {
        const float v = scale == 0.0f ? offset : float(counter_random::normal(base, uint64_t(i))) * scale + offset;
        store_f(dst + i, v);
    }
}

}  // namespace

void launch_copy(const CopyParams& p) {
    // Merge dims (outermost first): drop size-1 dims, fold a dim into the previous when both sides step through
    // the pair as one run. Fewer dims = fewer divisions per element.
    std::vector<int64_t> shape, ss, ds;
    for (int d = 0; d < p.ndim; ++d) {
        const int64_t n = p.shape[d];
        if (n == 0) return;  // nothing to copy
        if (n == 1) continue;
        if (!shape.empty() && ss.back() == p.src_strides[d] * n && ds.back() == p.dst_strides[d] * n) {
            shape.back() *= n;
            ss.back() = p.src_strides[d];
            ds.back() = p.dst_strides[d];
        } else {
            shape.push_back(n);
            ss.push_back(p.src_strides[d]);
            ds.push_back(p.dst_strides[d]);
        }
    }
    if (shape.empty()) {  // a single element
        shape.push_back(1);
        ss.push_back(1);
        ds.push_back(1);
    }
    const int nd = int(shape.size());
    const int lead = nd > kMaxCopyDims ? nd - kMaxCopyDims : 0;  // dims walked on the host, one launch each
    CopyKernelParams k{};
    k.ndim = nd - lead;
    k.numel = 1;
    for (int d = 0; d < k.ndim; ++d) {
        k.shape[d] = shape[size_t(lead + d)];
        k.src_strides[d] = ss[size_t(lead + d)];
        k.dst_strides[d] = ds[size_t(lead + d)];
        k.numel *= k.shape[d];
    }
    const size_t sbytes = dtype_size(p.src_dtype), dbytes = dtype_size(p.dst_dtype);
    int64_t outer = 1;
    for (int d = 0; d < lead; ++d) outer *= shape[size_t(d)];
    for (int64_t o = 0; o < outer; ++o) {
        int64_t rem = o, so = 0, dof = 0;
        for (int d = lead - 1; d >= 0; --d) {
            const int64_t idx = rem % shape[size_t(d)];
            rem /= shape[size_t(d)];
            so += idx * ss[size_t(d)];
            dof += idx * ds[size_t(d)];
        }
        k.src = static_cast<const char*>(p.src) + so * int64_t(sbytes);
        k.dst = static_cast<char*>(p.dst) + dof * int64_t(dbytes);
        launch_copy_kernel(k, p.src_dtype, p.dst_dtype);
    }
}

void launch_upsample_nearest(const UpsampleParams& p) {
    const int64_t numel = p.planes * p.out_h * p.out_w;
    if (numel == 0) return;
    const float scale_h = float(p.in_h) / float(p.out_h), scale_w = float(p.in_w) / float(p.out_w);
    const unsigned grid = grid_for(numel);
    switch (dtype_size(p.dtype)) {  // a gather: bits only, no arithmetic on the values
        case 2:
            launch(upsample_nearest_kernel<uint16_t>, grid, kThreads, 0,
                static_cast<const uint16_t*>(p.x), static_cast<uint16_t*>(p.y), numel, p.in_h, p.in_w, p.out_h,
                p.out_w, scale_h, scale_w);
            break;
        case 4:
            launch(upsample_nearest_kernel<uint32_t>, grid, kThreads, 0,
                static_cast<const uint32_t*>(p.x), static_cast<uint32_t*>(p.y), numel, p.in_h, p.in_w, p.out_h,
                p.out_w, scale_h, scale_w);
            break;
        default: fail(ErrorCode::UNSUPPORTED, "upsample_nearest on cuda: dtype ", dtype_name(p.dtype));
    }
    SDXL_CUDA_CHECK(cudaGetLastError());
}

void launch_timestep_embedding(const TimestepParams& p) {
    const int64_t numel = p.n * p.dim;
    if (numel == 0) return;
    const unsigned grid = grid_for(numel);
    if (p.t_dtype == DType::I64) {
        launch(timestep_embedding_kernel<int64_t>, grid, kThreads, 0, p, static_cast<const int64_t*>(p.t));
    } else if (p.t_dtype == DType::F32) {
        launch(timestep_embedding_kernel<float>, grid, kThreads, 0, p, static_cast<const float*>(p.t));
    } else {
        fail(ErrorCode::UNSUPPORTED, "timestep_embedding on cuda: t must be F32 or I64, got ", dtype_name(p.t_dtype));
    }
    SDXL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sdxl::cuda

namespace sdxl::device {

void cuda_strided_copy(void* dst, const void* src, DType dtype, int ndim, const int64_t* shape,
                       const int64_t* src_strides) {
    // dst is contiguous: its strides follow from the shape.
    std::vector<int64_t> dst_strides(size_t(ndim > 0 ? ndim : 1), 1);
    for (int d = ndim - 2; d >= 0; --d) {
        const int64_t next = shape[d + 1] > 1 ? shape[d + 1] : 1;
        dst_strides[size_t(d)] = dst_strides[size_t(d + 1)] * next;
    }
    cuda::launch_copy({src, dst, dtype, dtype, ndim, shape, src_strides, dst_strides.data()});
}

void cuda_convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
    const int64_t one = 1;
    cuda::launch_copy({src, dst, src_dtype, dst_dtype, 1, &n, &one, &one});
}

void cuda_fill_counter_normal(void* dst, DType dtype, int64_t n, uint64_t base, float scale, float offset) {
    if (n == 0) return;
    cuda::dispatch_float(dtype, "random weights", [&](auto tag) {
        using T = typename decltype(tag)::type;
        cuda::launch(cuda::counter_normal_kernel<T>, cuda::grid_for(n), cuda::kThreads, 0, static_cast<T*>(dst), n,
                     base, scale, offset);
    });
    SDXL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sdxl::device
