// CUDA linear and batched matmul on cuBLAS (loaded at run time, see cuda_libs.h), F32/F16/BF16 with fp32
// accumulation (CUBLAS_COMPUTE_32F). F32 runs without TF32 by default, so results match the CPU backend to
// fp32 rounding; SDXL4J_CUDA_TF32=1 allows TF32 tensor cores for F32 (CUBLAS_COMPUTE_32F_FAST_TF32,
// ~10-bit mantissa products, much faster). Reduced-precision split-K reductions are disallowed for F16/BF16.
//
// Row-major <-> column-major: cuBLAS is column-major, and a row-major [r, c] matrix is the column-major
// [c, r] matrix of its transpose. So C = A B (row-major) is computed as C^T = B^T A^T in cuBLAS terms: the
// operands are passed swapped, each with op N when it is a plain row-major view and op T when it is a
// transposed view (e.g. k.transpose(-1, -2), or w [N, K] read as w^T). Other strides are copied first.
// A batch of 1 is broadcast with a batch stride of 0 (cublasGemmStridedBatchedEx).
//
// The bias of linear is broadcast into the output first (cuda_bias.cu) and the GEMM accumulates onto it
// (beta = 1). A cuBLASLt bias epilogue would save that pass: a later optimisation.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_libs.h"

#if defined(SDXL_HAVE_CUBLAS)

#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>

#include "backends/cuda/cuda_bias.h"

namespace sdxl::cuda {

namespace {

const char* status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "unknown cublasStatus_t";
}

// Names the call, file and line; ALLOC_FAILED is OUT_OF_MEMORY, anything else DEVICE_ERROR.
#define SDXL_CUBLAS_CHECK(call)                                                                              \
    do {                                                                                                     \
        const cublasStatus_t st_ = (call);                                                                   \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
            ::sdxl::cuda::libs::fail_call("cuBLAS", int(st_), status_name(st_),                              \
                                          st_ == CUBLAS_STATUS_ALLOC_FAILED ? ::sdxl::ErrorCode::OUT_OF_MEMORY \
                                                                            : ::sdxl::ErrorCode::DEVICE_ERROR, \
                                          #call, __FILE__, __LINE__);                                        \
    } while (0)

// The entry points we use, resolved with dlsym. Declared here rather than with decltype: cublas_api.h
// overloads some of them for C++.
struct Api {
    cublasStatus_t (*Create)(cublasHandle_t*);
    cublasStatus_t (*SetStream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*SetWorkspace)(cublasHandle_t, void*, size_t);
    cublasStatus_t (*SetMathMode)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*GetVersion)(cublasHandle_t, int*);
    cublasStatus_t (*GemmEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                             const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                             cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    cublasStatus_t (*GemmStridedBatchedEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                           const void*, const void*, cudaDataType, int, long long, const void*,
                                           cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                           long long, int, cublasComputeType_t, cublasGemmAlgo_t);
};

template <typename Fn>
void resolve(Fn& fn, const char* name) {
    fn = reinterpret_cast<Fn>(libs::symbol(libs::cublas(), name));
}

struct Blas {
    Api api{};
    cublasHandle_t handle = nullptr;
    bool tf32 = false;
    int version = 0;
    std::mutex mu;  // a cuBLAS handle must not be used by two threads at once
    // Our own workspace (cuBLAS guide, "CUDA Graphs Support": with a user workspace cuBLAS allocates nothing
    // during a capture). Never freed, like the handle. cublasSetStream resets it, so it is set again each time
    // the handle follows another stream (a graph capture's).
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    cudaStream_t bound = nullptr;
};

// Points the handle at this thread's stream (the capture stream while capturing), with our workspace. mu held.
void bind_stream(Blas& b) {
    const cudaStream_t s = stream();
    if (b.bound == s) return;
    SDXL_CUBLAS_CHECK(b.api.SetStream(b.handle, s));
    SDXL_CUBLAS_CHECK(b.api.SetWorkspace(b.handle, b.workspace, b.workspace_bytes));
    b.bound = s;
}

// Created on first use (a failure is thrown, and the next call tries again); never destroyed (the process
// may exit with work still queued; the driver cleans up).
Blas& blas() {
    static Blas* b = [] {
        libs::require(libs::cublas(), "linear/matmul");
        auto* s = new Blas();
        try {
            resolve(s->api.Create, "cublasCreate_v2");
            resolve(s->api.SetStream, "cublasSetStream_v2");
            resolve(s->api.SetWorkspace, "cublasSetWorkspace_v2");
            resolve(s->api.SetMathMode, "cublasSetMathMode");
            resolve(s->api.GetVersion, "cublasGetVersion_v2");
            resolve(s->api.GemmEx, "cublasGemmEx");
            resolve(s->api.GemmStridedBatchedEx, "cublasGemmStridedBatchedEx");
            SDXL_CUBLAS_CHECK(s->api.Create(&s->handle));
            SDXL_CUBLAS_CHECK(s->api.GetVersion(s->handle, &s->version));
            if (s->version / 10000 != CUBLAS_VER_MAJOR)
                fail(ErrorCode::DEVICE_ERROR, "cuBLAS ", s->version, " loaded from ", libs::cublas().path,
                     " is not the major version ", CUBLAS_VER_MAJOR, " this library was compiled against");
            // The guide's recommended sizes: 32 MiB on Hopper (sm_90) and later, 4 MiB before. Plain cudaMalloc,
            // outside the caching allocator (a graph pool would take it back).
            int major = 0;
            if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess) major = 0;
            (void)cudaGetLastError();
            s->workspace_bytes = size_t(major >= 9 ? 32 : 4) << 20;
            if (cudaMalloc(&s->workspace, s->workspace_bytes) != cudaSuccess) {
                (void)cudaGetLastError();
                fail(ErrorCode::OUT_OF_MEMORY, "cuBLAS: cannot allocate its ", s->workspace_bytes >> 20, " MiB workspace");
            }
            bind_stream(*s);
            SDXL_CUBLAS_CHECK(s->api.SetMathMode(
                s->handle, cublasMath_t(int(CUBLAS_DEFAULT_MATH) | int(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION))));
            const char* t = std::getenv("SDXL4J_CUDA_TF32");
            s->tf32 = t && t[0] == '1';
        } catch (...) {
            if (s->workspace) (void)cudaFree(s->workspace);
            delete s;  // the handle (if any) leaks: harmless, and only on a failed start
            throw;
        }
        return s;
    }();
    return *b;
}

cudaDataType data_type(DType t, const char* op) {
    switch (t) {
        case DType::F32: return CUDA_R_32F;
        case DType::F16: return CUDA_R_16F;
        case DType::BF16: return CUDA_R_16BF;
        default: break;
    }
    fail(ErrorCode::UNSUPPORTED, op, " on CUDA supports F32, F16 and BF16, not ", dtype_name(t));
}

int to_int(int64_t v, const char* what, const char* op) {
    if (v < 0 || v > INT_MAX)
        fail(ErrorCode::UNSUPPORTED, op, ": ", what, " = ", v, " exceeds cuBLAS's 32-bit range");
    return int(v);
}

// A row-major [rows, cols] operand as cuBLAS sees it in the swapped (transposed) product: op N with
// ld = row stride for a plain view, op T with ld = column stride for a transposed view.
struct Operand {
    Tensor keep;  // the tensor the pointer belongs to (a contiguous copy when one was needed)
    const void* ptr = nullptr;
    cublasOperation_t op = CUBLAS_OP_N;
    int64_t ld = 0;
    bool ok = false;
};

Operand classify(const Tensor& t, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
    Operand o;
    o.keep = t;
    o.ptr = t.raw_data();
    // A dimension of size <= 1 never uses its stride: it may be whatever fits.
    if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= std::max<int64_t>(1, cols))) {
        o.op = CUBLAS_OP_N;
        o.ld = rows <= 1 ? std::max<int64_t>(1, cols) : rs;
        o.ok = true;
    } else if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= std::max<int64_t>(1, rows))) {
        o.op = CUBLAS_OP_T;
        o.ld = cols <= 1 ? std::max<int64_t>(1, rows) : cs;
        o.ok = true;
    }
    return o;
}

// The last two dims of t as a [rows, cols] operand; transposed: t holds the matrix as [cols, rows] (w of
// linear). Copies t when its strides fit neither layout.
Operand matrix(const Tensor& t, bool transposed) {
    const int r = t.dim();
    const int64_t d0 = t.shape()[size_t(r - 2)], d1 = t.shape()[size_t(r - 1)];
    const int64_t s0 = t.strides()[size_t(r - 2)], s1 = t.strides()[size_t(r - 1)];
    Operand o = transposed ? classify(t, d1, d0, s1, s0) : classify(t, d0, d1, s0, s1);
    if (o.ok) return o;
    const Tensor c = t.contiguous();
    const int64_t c0 = c.strides()[size_t(r - 2)], c1 = c.strides()[size_t(r - 1)];
    o = transposed ? classify(c, d1, d0, c1, c0) : classify(c, d0, d1, c0, c1);
    if (!o.ok) fail(ErrorCode::INTERNAL, "gemm: contiguous operand ", c.describe(), " not addressable");
    return o;
}

// x [..., K] as a [M, K] matrix: a view when the leading dims merge, else a contiguous copy.
Tensor as_rows(const Tensor& x) {
    const int r = x.dim();
    const int64_t cols = x.shape()[size_t(r - 1)];
    int64_t rows = 1, row_stride = -1, inner = 1;
    bool mergeable = true;
    for (int i = r - 2; i >= 0; --i) {
        const int64_t size = x.shape()[size_t(i)], stride = x.strides()[size_t(i)];
        rows *= size;
        if (size == 1) continue;
        if (row_stride < 0) row_stride = stride;
        else if (stride != row_stride * inner) mergeable = false;
        inner *= size;
    }
    if (row_stride < 0) row_stride = std::max<int64_t>(1, cols);
    if (mergeable)
        return Tensor::from_storage(x.storage(), x.offset(), {rows, cols}, {row_stride, x.strides()[size_t(r - 1)]},
                                    x.dtype());
    return x.contiguous().view({rows, cols});
}

// C [batch, M, N] (row-major, contiguous) = A [M, K] B [K, N] per batch item, beta = 0 or 1.
void gemm(const char* op, DType dt, const Operand& a, int64_t stride_a, const Operand& b, int64_t stride_b,
          int64_t m, int64_t n, int64_t k, int64_t batch, float beta, void* c) {
    Blas& bl = blas();
    const cudaDataType type = data_type(dt, op);
    const cublasComputeType_t compute =
        dt == DType::F32 && bl.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const float alpha = 1.0f;
    const int im = to_int(m, "M", op), in = to_int(n, "N", op), ik = to_int(k, "K", op);
    const int lda = to_int(a.ld, "lda", op), ldb = to_int(b.ld, "ldb", op), ib = to_int(batch, "batch", op);
    std::lock_guard<std::mutex> lock(bl.mu);
    bind_stream(bl);
    // Column-major view of the row-major product: C^T [N, M] = B^T [N, K] A^T [K, M] (m' = N, n' = M).
    if (batch == 1) {
        SDXL_CUBLAS_CHECK(bl.api.GemmEx(bl.handle, b.op, a.op, in, im, ik, &alpha, b.ptr, type, ldb, a.ptr, type, lda,
                                        &beta, c, type, in, compute, CUBLAS_GEMM_DEFAULT));
    } else {
        SDXL_CUBLAS_CHECK(bl.api.GemmStridedBatchedEx(bl.handle, b.op, a.op, in, im, ik, &alpha, b.ptr, type, ldb,
                                                      stride_b, a.ptr, type, lda, stride_a, &beta, c, type, in,
                                                      m * n, ib, compute, CUBLAS_GEMM_DEFAULT));
    }
}

// y [..., N] = x [..., K] @ w [N, K]^T + b
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
    const int64_t k = w.shape()[1], n = w.shape()[0];
    Shape out_shape = x.shape();
    out_shape.back() = n;
    if (shape_numel(out_shape) == 0) return Tensor::empty(out_shape, x.dtype(), Device::CUDA);
    (void)data_type(x.dtype(), "linear");
    const Tensor x2 = as_rows(x);
    const int64_t m = x2.shape()[0];
    Tensor y = b.defined() ? Tensor::empty(out_shape, x.dtype(), Device::CUDA)
                           : (k == 0 ? Tensor::zeros(out_shape, x.dtype(), Device::CUDA)
                                     : Tensor::empty(out_shape, x.dtype(), Device::CUDA));
    float beta = 0.0f;
    if (b.defined()) {
        const Tensor bc = b.contiguous();
        fill_bias(y.raw_data(), bc.raw_data(), dtype_size(x.dtype()), m, n, 1);
        beta = 1.0f;
    }
    if (k == 0) return y;  // empty sums: the bias (or zeros)
    const Operand a = matrix(x2, false);
    const Operand wt = matrix(w, true);  // w^T [K, N]
    gemm("linear", x.dtype(), a, 0, wt, 0, m, n, k, 1, beta, y.raw_data());
    return y;
}

// a [Ba, M, K] @ b [Bb, K, N] -> [max(Ba, Bb), M, N]; a batch of 1 is broadcast (stride 0).
Tensor matmul(const Tensor& a, const Tensor& b) {
    const int64_t ba = a.shape()[0], m = a.shape()[1], k = a.shape()[2];
    const int64_t bb = b.shape()[0], n = b.shape()[2];
    const int64_t batch = std::max(ba, bb);
    if (batch * m * n == 0) return Tensor::empty({batch, m, n}, a.dtype(), Device::CUDA);
    if (k == 0) return Tensor::zeros({batch, m, n}, a.dtype(), Device::CUDA);
    (void)data_type(a.dtype(), "matmul");
    Tensor y = Tensor::empty({batch, m, n}, a.dtype(), Device::CUDA);
    const Operand oa = matrix(a, false);
    const Operand ob = matrix(b, false);
    const int64_t sa = ba == 1 ? 0 : oa.keep.strides()[0];
    const int64_t sb = bb == 1 ? 0 : ob.keep.strides()[0];
    gemm("matmul", a.dtype(), oa, sa, ob, sb, m, n, k, batch, 0.0f, y.raw_data());
    return y;
}

}  // namespace

void register_gemm_ops(Backend& table) {
    table.linear = linear;
    table.matmul = matmul;
}

namespace libs {
bool gemm_compiled() { return true; }
}  // namespace libs

}  // namespace sdxl::cuda

#else  // no cuBLAS headers at build time: linear/matmul stay null (UNSUPPORTED), see cmake/SdxlCudaLibs.cmake

namespace sdxl::cuda {

void register_gemm_ops(Backend&) {}

namespace libs {
bool gemm_compiled() { return false; }
}  // namespace libs

}  // namespace sdxl::cuda

#endif
