// Normalisation kernels. group_norm: one group is a contiguous run of L = C/G * S values, often large
// (VAE: 4M), so it is split into chunks, each block computing its chunk's (mean, M2) two-pass; a tiny kernel
// combines the chunks per group (Chan's formula, in double) into mean/rstd; a grid-stride pass normalises.
// layer_norm and softmax: one block per row, two passes over the row (it stays in L1/L2), warp-shuffle
// reductions.
#include <cuda_runtime.h>

#include <algorithm>

#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_kernel_util.cuh"
#include "backends/cuda/cuda_norm.cuh"

namespace sdxl::cuda {

namespace {

constexpr int64_t kGnChunk = 8192;  // values per statistics block (32 per thread)

// Work item w = group * chunks + chunk; partial[2w] = chunk mean, partial[2w+1] = chunk M2 (sum of squared
// deviations from the chunk mean).
template <typename T>
__global__ void group_norm_partial_kernel(const T* x, float* partial, int64_t groups_total, int64_t L, int64_t chunks) {
    __shared__ float scratch[32];
    for (int64_t w = blockIdx.x; w < groups_total * chunks; w += gridDim.x) {  // uniform per block
        const int64_t g = w / chunks, k = w - g * chunks;
        const int64_t begin = k * kGnChunk, len = min(kGnChunk, L - begin);
        const T* p = x + g * L + begin;
        // Sums of x - pivot (the group's first value): small terms when |mean| >> std, so fp32 sums stay exact-ish.
        const float pivot = load_f(x + g * L);
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += load_f(p + i) - pivot;
        const float mean = pivot + block_sum(s, scratch) / float(len);
        float q = 0.0f;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
            const float dv = load_f(p + i) - mean;
            q += dv * dv;
        }
        const float m2 = block_sum(q, scratch);
        if (threadIdx.x == 0) {
            partial[2 * w] = mean;
            partial[2 * w + 1] = m2;
        }
    }
}

// One thread per (n, group): stats[2g] = mean, stats[2g+1] = 1/sqrt(var + eps).
__global__ void group_norm_finalize_kernel(const float* partial, float* stats, int64_t groups_total, int64_t L,
                                           int64_t chunks, float eps) {
    for (int64_t g = gs_begin(); g < groups_total; g += gs_stride()) {
        const float* pp = partial + 2 * g * chunks;
        double sum = 0.0;
        for (int64_t k = 0; k < chunks; ++k) sum += double(min(kGnChunk, L - k * kGnChunk)) * pp[2 * k];
        const double mean = sum / double(L);
        double m2 = 0.0;
        for (int64_t k = 0; k < chunks; ++k) {
            const double nk = double(min(kGnChunk, L - k * kGnChunk)), dm = double(pp[2 * k]) - mean;
            m2 += double(pp[2 * k + 1]) + nk * dm * dm;
        }
        stats[2 * g] = float(mean);
        stats[2 * g + 1] = float(1.0 / sqrt(m2 / double(L) + double(eps)));
    }
}

// x, y [N, C, S]: element i is in channel (i / S) % C and (n, group) i / L.
template <typename T, bool kSilu>
__global__ void group_norm_apply_kernel(const T* x, T* y, const T* gamma, const T* beta, const float* stats,
                                        int64_t numel, int64_t C, int64_t S, int64_t L) {
    for (int64_t i = gs_begin(); i < numel; i += gs_stride()) {
        const int64_t c = (i / S) % C, g = i / L;
        const float mean = stats[2 * g], rstd = stats[2 * g + 1];
        const float a = gamma ? rstd * load_f(gamma + c) : rstd;
        const float b = beta ? load_f(beta + c) : 0.0f;
        float v = (load_f(x + i) - mean) * a + b;
        if (kSilu) v = v / (1.0f + expf(-v));
        store_f(y + i, v);
    }
}

template <typename T>
__global__ void layer_norm_kernel(LayerNormParams p) {
    __shared__ float scratch[32];
    const T* gamma = static_cast<const T*>(p.gamma);
    const T* beta = static_cast<const T*>(p.beta);
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {  // uniform per block
        const T* x = static_cast<const T*>(p.x) + r * p.d;
        T* y = static_cast<T*>(p.y) + r * p.d;
        const float pivot = load_f(x);  // shifted sums, as in group_norm
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < p.d; i += blockDim.x) s += load_f(x + i) - pivot;
        const float mean = pivot + block_sum(s, scratch) / float(p.d);
        float q = 0.0f;
        for (int64_t i = threadIdx.x; i < p.d; i += blockDim.x) {
            const float dv = load_f(x + i) - mean;
            q += dv * dv;
        }
        const float rstd = 1.0f / sqrtf(block_sum(q, scratch) / float(p.d) + p.eps);  // IEEE, not rsqrtf
        for (int64_t i = threadIdx.x; i < p.d; i += blockDim.x) {
            float v = (load_f(x + i) - mean) * rstd;
            if (gamma) v *= load_f(gamma + i);
            if (beta) v += load_f(beta + i);
            store_f(y + i, v);
        }
    }
}

template <typename T>
__global__ void softmax_kernel(SoftmaxParams p) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {  // uniform per block
        const T* x = static_cast<const T*>(p.x) + r * p.d;
        T* y = static_cast<T*>(p.y) + r * p.d;
        float m = -INFINITY;
        for (int64_t i = threadIdx.x; i < p.d; i += blockDim.x) m = fmaxf(m, load_f(x + i));
        m = block_max(m, scratch);
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < p.d; i += blockDim.x) s += expf(load_f(x + i) - m);
        const float inv = 1.0f / block_sum(s, scratch);
        for (int64_t i = threadIdx.x; i < p.d; i += blockDim.x) store_f(y + i, expf(load_f(x + i) - m) * inv);
    }
}

// Threads for one row of d values: a multiple of 32, at most 256.
int row_threads(int64_t d) { return int(std::min<int64_t>(256, std::max<int64_t>(32, (d + 31) / 32 * 32))); }

unsigned row_blocks(int64_t rows) { return unsigned(std::min<int64_t>(rows, int64_t(1) << 20)); }

}  // namespace

void launch_group_norm(const GroupNormParams& p) {
    const int64_t numel = p.n * p.c * p.spatial;
    if (numel == 0) return;
    const int64_t groups_total = p.n * p.groups, L = p.c / p.groups * p.spatial;
    const int64_t chunks = (L + kGnChunk - 1) / kGnChunk;
    // Workspace: chunk partials, then per-group stats. Freed when this returns: stream-ordered for the caching
    // allocator, and a plain cudaFree waits for the device.
    Tensor ws = Tensor::empty({2 * groups_total * chunks + 2 * groups_total}, DType::F32, Device::CUDA);
    float* partial = static_cast<float*>(ws.raw_data());
    float* stats = partial + 2 * groups_total * chunks;
    dispatch_float(p.dtype, "group_norm", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* x = static_cast<const T*>(p.x);
        const unsigned items = unsigned(std::min<int64_t>(groups_total * chunks, int64_t(1) << 20));
        launch(group_norm_partial_kernel<T>, items, kThreads, 0, x, partial, groups_total, L, chunks);
        SDXL_CUDA_CHECK(cudaGetLastError());
        launch(group_norm_finalize_kernel, grid_for(groups_total, 128), 128, 0, partial, stats, groups_total,
               L, chunks, p.eps);
        SDXL_CUDA_CHECK(cudaGetLastError());
        const T* gamma = static_cast<const T*>(p.gamma);
        const T* beta = static_cast<const T*>(p.beta);
        T* y = static_cast<T*>(p.y);
        if (p.silu)
            launch(group_norm_apply_kernel<T, true>, grid_for(numel), kThreads, 0, x, y, gamma, beta, stats,
                   numel, p.c, p.spatial, L);
        else
            launch(group_norm_apply_kernel<T, false>, grid_for(numel), kThreads, 0, x, y, gamma, beta, stats,
                   numel, p.c, p.spatial, L);
        SDXL_CUDA_CHECK(cudaGetLastError());
    });
}

void launch_layer_norm(const LayerNormParams& p) {
    if (p.rows == 0 || p.d == 0) return;
    dispatch_float(p.dtype, "layer_norm", [&](auto tag) {
        using T = typename decltype(tag)::type;
        launch(layer_norm_kernel<T>, row_blocks(p.rows), row_threads(p.d), 0, p);
    });
    SDXL_CUDA_CHECK(cudaGetLastError());
}

void launch_softmax(const SoftmaxParams& p) {
    if (p.rows == 0 || p.d == 0) return;
    dispatch_float(p.dtype, "softmax", [&](auto tag) {
        using T = typename decltype(tag)::type;
        launch(softmax_kernel<T>, row_blocks(p.rows), row_threads(p.d), 0, p);
    });
    SDXL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sdxl::cuda
