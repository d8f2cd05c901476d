// The CPU backend's op implementations (registered in cpu_backend.cpp) and the helpers they share.
// Arguments arrive validated by ops/ (F32, shapes agree, dims normalised); these functions only compute.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sdxl::cpu {

// ---- op implementations, one family per file
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual);  // cpu_matmul.cpp
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding);  // cpu_conv.cpp
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);  // cpu_norm.cpp
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor silu(const Tensor& x);  // cpu_elementwise.cpp
Tensor gelu(const Tensor& x);
Tensor gelu_tanh(const Tensor& x);
Tensor quick_gelu(const Tensor& x);
Tensor geglu(const Tensor& x);
Tensor softmax(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b, const Shape& out_shape);
Tensor sub(const Tensor& a, const Tensor& b, const Shape& out_shape);
Tensor mul(const Tensor& a, const Tensor& b, const Shape& out_shape);
Tensor scale(const Tensor& x, float alpha, float beta);
Tensor concat(const std::vector<Tensor>& parts, int dim);
Tensor timestep_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift, float scale,
                          float max_period);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                 float scale);  // cpu_attention.cpp

// ---- shared helpers (cpu_matmul.cpp)

// Elementwise loops split into chunks of at least this many elements (smaller work runs inline).
constexpr int64_t kElementwiseGrain = 16384;

// Threading: OpenBLAS is put in single-threaded mode (once, process-wide) and every parallel loop,
// gemms included, runs on our pool (core/parallel.h). Measured here: two threads each calling a 1-thread
// sgemm reach 2x the throughput of one call on OpenBLAS's own threads, and OpenBLAS threads that spin
// after a call slow the elementwise work that follows; one pool avoids both.

// A 2-D strided float matrix [rows, cols] (strides in elements) as cblas sees it: row-major with leading
// dimension ld, transposed or not. ok is false when neither layout fits (then copy to contiguous first).
struct GemmOperand {
    const float* ptr = nullptr;
    bool trans = false;
    int64_t ld = 0;
    bool ok = false;
};
GemmOperand gemm_operand(const float* ptr, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride);

// C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, row-major C with leading dimension ldc.
// Large products are split into column (or row) blocks over the pool; called from inside a pool worker
// it runs as one call on that thread. Checks that every size fits cblas' int; k == 0 never reaches BLAS.
void sgemm(const GemmOperand& a, const GemmOperand& b, int64_t m, int64_t n, int64_t k, float alpha, float beta,
           float* c, int64_t ldc);

// Tests: run attention on its portable path (sgemm products, compiler-vectorised softmax) even where the
// AVX2/FMA kernels could run. Not for concurrent use with other attention calls.
void attention_force_portable(bool on);

// Collapses x [d0, ..., d_{r-2}, last] into a 2-D [rows, last] strided view when its leading dims are
// mergeable without a copy; otherwise returns a contiguous copy viewed as 2-D.
Tensor as_rows(const Tensor& x);

}  // namespace sdxl::cpu
