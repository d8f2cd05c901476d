// Elementwise kernels: broadcasting binary ops by strides, unary activations, GEGLU. Storage F32/F16/BF16,
// math in float with the CPU backend's formulas (same association order; products and sums that the CPU
// rounds separately are kept separate with __fmul_rn/__fadd_rn where a fused a*b+c would change the F32 result).
#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_elementwise.cuh"
#include "backends/cuda/cuda_kernel_util.cuh"

namespace sdxl::cuda {

namespace {

// ------------------------------------------------------------------------------------------- binary

struct BinaryKernelParams {
    const void* a;
    const void* b;
    void* out;
    int64_t numel;
    int ndim;  // >= 1 after merging
    int64_t shape[kMaxDims];
    int64_t a_strides[kMaxDims];
    int64_t b_strides[kMaxDims];
};

template <BinaryOp Op, typename T>
__global__ void binary_kernel(BinaryKernelParams p) {
    const T* a = static_cast<const T*>(p.a);
    const T* b = static_cast<const T*>(p.b);
    T* out = static_cast<T*>(p.out);
    for (int64_t i = gs_begin(); i < p.numel; i += gs_stride()) {
        int64_t rem = i, ia = 0, ib = 0;
        for (int d = p.ndim - 1; d > 0; --d) {
            const int64_t q = rem / p.shape[d];
            const int64_t idx = rem - q * p.shape[d];
            rem = q;
            ia += idx * p.a_strides[d];
            ib += idx * p.b_strides[d];
        }
        ia += rem * p.a_strides[0];  // rem < shape[0] since i < numel: no division for the outermost dim
        ib += rem * p.b_strides[0];
        const float x = load_f(a + ia), y = load_f(b + ib);
        store_f(out + i, Op == BinaryOp::ADD ? x + y : Op == BinaryOp::SUB ? x - y : x * y);
    }
}

// ------------------------------------------------------------------------------------------- 16-byte packs
// The memory-bound kernels' fast paths move 16 bytes per load and store (8 F16/BF16 or 4 F32 elements: one
// 128-bit transaction per thread instead of 4-8 narrow ones), with 32-bit index math. They run where every
// pointer is 16-byte aligned and the packed dimension is a multiple of the pack; the general kernels do the rest.
template <typename T>
constexpr int kPack = 16 / int(sizeof(T));

template <typename T>
union Pack16 {
    uint4 raw;
    T e[kPack<T>];
};

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// out = a (op) b, both contiguous over n = packs * kPack elements (b_row > 0: b is one row of b_row elements
// repeated, the bias/broadcast case [rows, b_row] + [b_row]).
template <BinaryOp Op, typename T>
__global__ void binary_pack_kernel(const uint4* a, const uint4* b, uint4* out, uint32_t packs, uint32_t b_row_packs) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += gridDim.x * blockDim.x) {
        Pack16<T> x, y, r;
        x.raw = a[i];
        y.raw = b[b_row_packs ? i % b_row_packs : i];
        for (int j = 0; j < kPack<T>; ++j) {
            const float u = load_f(&x.e[j]), v = load_f(&y.e[j]);
            store_f(&r.e[j], Op == BinaryOp::ADD ? u + v : Op == BinaryOp::SUB ? u - v : u * v);
        }
        out[i] = r.raw;
    }
}

// ------------------------------------------------------------------------------------------- unary

__device__ __forceinline__ float gelu_erf(float v) { return v * 0.5f * (1.0f + erff(v * 0.70710678118654752f)); }

template <UnaryOp Op>
__device__ __forceinline__ float unary_f(float v, float alpha, float beta) {
    if (Op == UnaryOp::SCALE) return __fadd_rn(__fmul_rn(alpha, v), beta);  // unfused, as the CPU's alpha*v+beta
    if (Op == UnaryOp::SILU) return v / (1.0f + expf(-v));
    if (Op == UnaryOp::GELU) return gelu_erf(v);
    if (Op == UnaryOp::GELU_TANH) {
        const float kBeta = 0.79788456080286536f;  // sqrt(2 / pi)
        const float kKappa = 0.044715f;
        const float cube = __fmul_rn(__fmul_rn(__fmul_rn(kKappa, v), v), v);
        const float inner = __fmul_rn(kBeta, __fadd_rn(v, cube));
        return 0.5f * v * (1.0f + tanhf(inner));
    }
    return v / (1.0f + expf(-1.702f * v));  // QUICK_GELU
}

template <UnaryOp Op, typename T>
__global__ void unary_kernel(const T* x, T* out, int64_t n, float alpha, float beta) {
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) store_f(out + i, unary_f<Op>(load_f(x + i), alpha, beta));
}

template <UnaryOp Op, typename T>
__global__ void unary_pack_kernel(const uint4* x, uint4* out, uint32_t packs, float alpha, float beta) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += gridDim.x * blockDim.x) {
        Pack16<T> v, r;
        v.raw = x[i];
        for (int j = 0; j < kPack<T>; ++j) store_f(&r.e[j], unary_f<Op>(load_f(&v.e[j]), alpha, beta));
        out[i] = r.raw;
    }
}

// GEGLU on packs: row r's output pack c (of d / kPack) from its h pack c and gate pack c (d / kPack further).
template <typename T>
__global__ void geglu_pack_kernel(const uint4* x, uint4* out, uint32_t rows, uint32_t d_packs) {
    const uint32_t n = rows * d_packs;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const uint32_t r = i / d_packs, c = i - r * d_packs;
        Pack16<T> h, g, o;
        h.raw = x[r * 2 * d_packs + c];
        g.raw = x[r * 2 * d_packs + d_packs + c];
        for (int j = 0; j < kPack<T>; ++j) store_f(&o.e[j], load_f(&h.e[j]) * gelu_erf(load_f(&g.e[j])));
        out[i] = o.raw;
    }
}

template <typename T>
__global__ void geglu_kernel(const T* x, T* out, int64_t rows, int64_t d) {
    const int64_t n = rows * d;
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) {
        const int64_t r = i / d, c = i - r * d;
        const T* row = x + r * 2 * d;
        store_f(out + i, load_f(row + c) * gelu_erf(load_f(row + d + c)));
    }
}

template <UnaryOp Op>
void launch_unary_op(const UnaryParams& p) {
    dispatch_float(p.dtype, "unary op", [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (p.n % kPack<T> == 0 && p.n / kPack<T> < (int64_t(1) << 31) && aligned16(p.x) && aligned16(p.out)) {
            const int64_t packs = p.n / kPack<T>;
            launch(unary_pack_kernel<Op, T>, grid_for(packs), kThreads, 0, static_cast<const uint4*>(p.x),
                   static_cast<uint4*>(p.out), uint32_t(packs), p.alpha, p.beta);
            return;
        }
        launch(unary_kernel<Op, T>, grid_for(p.n), kThreads, 0, static_cast<const T*>(p.x),
               static_cast<T*>(p.out), p.n, p.alpha, p.beta);
    });
}

template <BinaryOp Op>
void launch_binary_op(const BinaryKernelParams& k, DType dtype) {
    dispatch_float(dtype, "binary op", [&](auto tag) {
        using T = typename decltype(tag)::type;
        constexpr int V = kPack<T>;
        const bool fits = k.numel % V == 0 && k.numel / V < (int64_t(1) << 31) && aligned16(k.a) &&
                          aligned16(k.b) && aligned16(k.out);
        // Both operands contiguous (after merging: one dim, unit strides).
        if (fits && k.ndim == 1 && k.a_strides[0] == 1 && k.b_strides[0] == 1) {
            launch(binary_pack_kernel<Op, T>, grid_for(k.numel / V), kThreads, 0, static_cast<const uint4*>(k.a),
                   static_cast<const uint4*>(k.b), static_cast<uint4*>(k.out), uint32_t(k.numel / V), 0u);
            return;
        }
        // a [rows, cols] contiguous, b one row of cols broadcast over the rows (a bias, a per-channel vector).
        if (fits && k.ndim == 2 && k.shape[1] % V == 0 && k.a_strides[0] == k.shape[1] && k.a_strides[1] == 1 &&
            k.b_strides[0] == 0 && k.b_strides[1] == 1) {
            launch(binary_pack_kernel<Op, T>, grid_for(k.numel / V), kThreads, 0, static_cast<const uint4*>(k.a),
                   static_cast<const uint4*>(k.b), static_cast<uint4*>(k.out), uint32_t(k.numel / V),
                   uint32_t(k.shape[1] / V));
            return;
        }
        launch(binary_kernel<Op, T>, grid_for(k.numel), kThreads, 0, k);
    });
}

}  // namespace

void launch_binary(const BinaryParams& p, BinaryOp op) {
    if (p.numel == 0) return;
    // Merge dims (outermost first): drop size-1 dims, fold a dim into the previous one when both operands step
    // through the pair as one run (e.g. contiguous + contiguous becomes 1-D, no division per element).
    BinaryKernelParams k{};
    k.a = p.a;
    k.b = p.b;
    k.out = p.out;
    k.numel = p.numel;
    int nd = 0;
    for (int d = 0; d < p.ndim; ++d) {
        const int64_t n = p.shape[d];
        if (n == 1) continue;
        if (nd > 0 && k.a_strides[nd - 1] == p.a_strides[d] * n && k.b_strides[nd - 1] == p.b_strides[d] * n) {
            k.shape[nd - 1] *= n;
            k.a_strides[nd - 1] = p.a_strides[d];
            k.b_strides[nd - 1] = p.b_strides[d];
        } else {
            k.shape[nd] = n;
            k.a_strides[nd] = p.a_strides[d];
            k.b_strides[nd] = p.b_strides[d];
            ++nd;
        }
    }
    if (nd == 0) {  // a single element
        k.shape[0] = 1;
        k.a_strides[0] = k.b_strides[0] = 0;
        nd = 1;
    }
    k.ndim = nd;
    switch (op) {
        case BinaryOp::ADD: launch_binary_op<BinaryOp::ADD>(k, p.dtype); break;
        case BinaryOp::SUB: launch_binary_op<BinaryOp::SUB>(k, p.dtype); break;
        case BinaryOp::MUL: launch_binary_op<BinaryOp::MUL>(k, p.dtype); break;
    }
    SDXL_CUDA_CHECK(cudaGetLastError());
}

void launch_unary(const UnaryParams& p, UnaryOp op) {
    if (p.n == 0) return;
    switch (op) {
        case UnaryOp::SCALE: launch_unary_op<UnaryOp::SCALE>(p); break;
        case UnaryOp::SILU: launch_unary_op<UnaryOp::SILU>(p); break;
        case UnaryOp::GELU: launch_unary_op<UnaryOp::GELU>(p); break;
        case UnaryOp::GELU_TANH: launch_unary_op<UnaryOp::GELU_TANH>(p); break;
        case UnaryOp::QUICK_GELU: launch_unary_op<UnaryOp::QUICK_GELU>(p); break;
    }
    SDXL_CUDA_CHECK(cudaGetLastError());
}

void launch_geglu(const GegluParams& p) {
    if (p.rows == 0 || p.d == 0) return;
    dispatch_float(p.dtype, "geglu", [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (p.d % kPack<T> == 0 && p.rows * 2 * (p.d / kPack<T>) < (int64_t(1) << 31) && aligned16(p.x) &&
            aligned16(p.out)) {
            const int64_t d_packs = p.d / kPack<T>;
            launch(geglu_pack_kernel<T>, grid_for(p.rows * d_packs), kThreads, 0, static_cast<const uint4*>(p.x),
                   static_cast<uint4*>(p.out), uint32_t(p.rows), uint32_t(d_packs));
            return;
        }
        launch(geglu_kernel<T>, grid_for(p.rows * p.d), kThreads, 0, static_cast<const T*>(p.x),
               static_cast<T*>(p.out), p.rows, p.d);
    });
    SDXL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sdxl::cuda
