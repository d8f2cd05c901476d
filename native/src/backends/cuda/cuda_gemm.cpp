// CUDA linear and batched matmul on cuBLAS / cuBLASLt (loaded at run time, see cuda_libs.h), F32/F16/BF16 with
// fp32 accumulation (CUBLAS_COMPUTE_32F). F32 runs without TF32 by default, so results match the CPU backend to
// fp32 rounding; SDXL4J_CUDA_TF32=1 allows TF32 tensor cores for F32 (CUBLAS_COMPUTE_32F_FAST_TF32,
// ~10-bit mantissa products, much faster). Reduced-precision split-K reductions are disallowed for F16/BF16.
//
// Row-major <-> column-major: cuBLAS is column-major, and a row-major [r, c] matrix is the column-major
// [c, r] matrix of its transpose. So C = A B (row-major) is computed as C^T = B^T A^T in cuBLAS terms: the
// operands are passed swapped, each with op N when it is a plain row-major view and op T when it is a
// transposed view (e.g. k.transpose(-1, -2), or w [N, K] read as w^T). Other strides are copied first.
// A batch of 1 is broadcast with a batch stride of 0 (cublasGemmStridedBatchedEx).
//
// linear (y = x w^T + b + residual) is one cublasLtMatmul: D^T [N, M] = W [N, K] X^T [K, M] + beta C with the
// CUBLASLT_EPILOGUE_BIAS epilogue (the bias, of the data dtype, added per row of D^T = per output feature) and
// C = the residual with beta = 1, D a fresh output (the documented out-of-place form, C != D), so the bias and
// the residual cost no pass of their own. The algorithm comes from cublasLtMatmulAlgoGetHeuristic once per
// shape, dtype, leading dimensions and pointer alignments (cached, see LtKey), and runs with one workspace
// allocated up front (kLtWorkspaceBytes), so a captured CUDA graph never allocates. Where cuBLASLt is missing
// (not found, another major version), or answers NOT_SUPPORTED for a case, linear falls back to cuBLAS: the output
// starts as the broadcast bias (cuda_bias.cu) or residual + bias (one add kernel) and cublasGemmEx accumulates
// onto it (beta = 1). SDXL4J_CUDA_CUBLASLT=0 (read at start) or libs::force_cublas_linear() forces the fallback.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_libs.h"
#include "core/device.h"

#if defined(SDXL_HAVE_CUBLAS)

#include <cublas_v2.h>
#if __has_include(<cublasLt.h>)
#include <cublasLt.h>
#define SDXL_HAVE_CUBLASLT 1
#endif

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "backends/cuda/cuda_bias.h"
#include "core/device.h"
#include "core/op_profile.h"

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
#define SDXL_CUBLAS_CHECK(call) SDXL_BLAS_LIB_CHECK("cuBLAS", call)
#define SDXL_CUBLASLT_CHECK(call) SDXL_BLAS_LIB_CHECK("cuBLASLt", call)
#define SDXL_BLAS_LIB_CHECK(lib, call)                                                                       \
    do {                                                                                                     \
        const cublasStatus_t st_ = (call);                                                                   \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
            ::sdxl::cuda::libs::fail_call(lib, int(st_), status_name(st_),                                   \
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
void resolve(Fn& fn, const char* name, const libs::Library& lib = libs::cublas()) {
    fn = reinterpret_cast<Fn>(libs::symbol(lib, name));
}

// SDXL4J_CUDA_TF32=1: TF32 tensor cores for F32 GEMMs.
bool tf32_enabled() {
    static const bool on = [] {
        const char* t = std::getenv("SDXL4J_CUDA_TF32");
        return t && t[0] == '1';
    }();
    return on;
}

// Counters and the test hook behind libs::linear_paths() / libs::force_cublas_linear().
std::atomic<uint64_t> g_lt_calls{0}, g_cublas_calls{0};
std::atomic<bool>& force_cublas() {
    static std::atomic<bool> on{[] {
        const char* e = std::getenv("SDXL4J_CUDA_CUBLASLT");
        return e && e[0] == '0';
    }()};
    return on;
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
            if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device::cuda_device()) != cudaSuccess)
                major = 0;
            (void)cudaGetLastError();
            s->workspace_bytes = size_t(major >= 9 ? 32 : 4) << 20;
            if (cudaMalloc(&s->workspace, s->workspace_bytes) != cudaSuccess) {
                (void)cudaGetLastError();
                fail(ErrorCode::OUT_OF_MEMORY, "cuBLAS: cannot allocate its ", s->workspace_bytes >> 20, " MiB workspace");
            }
            bind_stream(*s);
            SDXL_CUBLAS_CHECK(s->api.SetMathMode(
                s->handle, cublasMath_t(int(CUBLAS_DEFAULT_MATH) | int(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION))));
            s->tf32 = tf32_enabled();
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
    profile::count_device_call();
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

// ------------------------------------------------------------------------------------------------ cuBLASLt

#if defined(SDXL_HAVE_CUBLASLT)

// 32 MiB: the workspace NVIDIA's cuBLAS guide recommends for Hopper (cublasSetWorkspace), plenty for the
// split-K and stream-K algorithms of SDXL's shapes. Allocated once from the caching allocator and never freed.
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;
// Cached plans before the cache is emptied (SDXL uses a few dozen shapes; this only bounds odd callers).
constexpr size_t kLtMaxPlans = 1024;

// The entry points we use (cublasLt.h has no C++ overloads, so decltype works).
struct LtApi {
    decltype(&::cublasLtCreate) Create;
    decltype(&::cublasLtGetVersion) GetVersion;
    decltype(&::cublasLtMatmulDescCreate) DescCreate;
    decltype(&::cublasLtMatmulDescDestroy) DescDestroy;
    decltype(&::cublasLtMatmulDescSetAttribute) DescSetAttribute;
    decltype(&::cublasLtMatrixLayoutCreate) LayoutCreate;
    decltype(&::cublasLtMatrixLayoutDestroy) LayoutDestroy;
    decltype(&::cublasLtMatmulPreferenceCreate) PrefCreate;
    decltype(&::cublasLtMatmulPreferenceDestroy) PrefDestroy;
    decltype(&::cublasLtMatmulPreferenceSetAttribute) PrefSetAttribute;
    decltype(&::cublasLtMatmulAlgoGetHeuristic) AlgoGetHeuristic;
    decltype(&::cublasLtMatmul) Matmul;
};

// What the heuristic's choice depends on. Alignments (bytes, capped at 256) matter because cuBLASLt assumes
// 256-byte aligned operands unless told otherwise (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*), and views start
// anywhere; the bias pointer's alignment is read from the descriptor by the heuristic itself.
struct LtKey {
    int dtype, tf32, op_w, op_x;
    int64_t m, n, k, ld_w, ld_x, ld_c;  // ld_c: -1 without a residual
    int bias;
    uint32_t align_w, align_x, align_c, align_d, align_bias;
    auto tie() const {
        return std::tie(dtype, tf32, op_w, op_x, m, n, k, ld_w, ld_x, ld_c, bias, align_w, align_x, align_c, align_d,
                        align_bias);
    }
    bool operator<(const LtKey& o) const { return tie() < o.tie(); }
};

struct LtPlan {
    bool ok = false;  // false: cuBLASLt said NOT_SUPPORTED, this case takes the cuBLAS path
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
};

struct Lt {
    LtApi api{};
    cublasLtHandle_t handle = nullptr;
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    std::map<LtKey, LtPlan> plans;
    std::mutex mu;  // the handle, the plans and their descriptors (the bias pointer is set per call)

    void destroy(LtPlan& p) {
        if (p.desc) (void)api.DescDestroy(p.desc);
        for (cublasLtMatrixLayout_t l : {p.a, p.b, p.c, p.d})
            if (l) (void)api.LayoutDestroy(l);
        p = LtPlan();
    }
};

uint32_t alignment(const void* p) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (a == 0) return 256;
    return uint32_t(std::min<uintptr_t>(a & (~a + 1), 256));  // lowest set bit
}

// The process's cuBLASLt, or null when it cannot be used (then linear takes the cuBLAS path): not found, a symbol
// missing, another major version, or cublasLtCreate failing. Tried once; a failure after loading is reported on
// stderr once (not thrown: the fallback computes the same thing).
Lt* lt() {
    static Lt* l = []() -> Lt* {
        const libs::Library& lib = libs::cublaslt();
        if (!lib.ok()) return nullptr;
        auto* s = new Lt();
        try {
            resolve(s->api.Create, "cublasLtCreate", lib);
            resolve(s->api.GetVersion, "cublasLtGetVersion", lib);
            resolve(s->api.DescCreate, "cublasLtMatmulDescCreate", lib);
            resolve(s->api.DescDestroy, "cublasLtMatmulDescDestroy", lib);
            resolve(s->api.DescSetAttribute, "cublasLtMatmulDescSetAttribute", lib);
            resolve(s->api.LayoutCreate, "cublasLtMatrixLayoutCreate", lib);
            resolve(s->api.LayoutDestroy, "cublasLtMatrixLayoutDestroy", lib);
            resolve(s->api.PrefCreate, "cublasLtMatmulPreferenceCreate", lib);
            resolve(s->api.PrefDestroy, "cublasLtMatmulPreferenceDestroy", lib);
            resolve(s->api.PrefSetAttribute, "cublasLtMatmulPreferenceSetAttribute", lib);
            resolve(s->api.AlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic", lib);
            resolve(s->api.Matmul, "cublasLtMatmul", lib);
            const size_t version = s->api.GetVersion();
            if (version / 10000 != size_t(CUBLAS_VER_MAJOR))
                fail(ErrorCode::DEVICE_ERROR, "cuBLASLt ", version, " loaded from ", lib.path,
                     " is not the major version ", CUBLAS_VER_MAJOR, " this library was compiled against");
            SDXL_CUBLASLT_CHECK(s->api.Create(&s->handle));
            try {
                s->workspace = device::cuda_malloc(kLtWorkspaceBytes);
                s->workspace_bytes = kLtWorkspaceBytes;
            } catch (const Error& e) {
                if (e.code() != ErrorCode::OUT_OF_MEMORY) throw;  // no room now: algorithms without workspace
            }
        } catch (const Error& e) {
            std::cerr << "sdxl4j: cuBLASLt is not used, linear falls back to cuBLAS: " << e.what() << "\n";
            delete s;  // the handle (if any) leaks: harmless, and only on a failed start
            return nullptr;
        }
        return s;
    }();
    return l;
}

// Creates the descriptors of one case and asks the heuristic for one algorithm. NOT_SUPPORTED (from the
// heuristic, or no algorithm at all) leaves plan.ok false; any other failure throws.
void build_plan(Lt& l, const LtKey& key, cudaDataType type, const void* bias, LtPlan& plan) {
    LtPlan p;
    auto check = [&](cublasStatus_t st, const char* call) {
        if (st == CUBLAS_STATUS_SUCCESS) return true;
        l.destroy(p);
        if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
        libs::fail_call("cuBLASLt", int(st), status_name(st),
                        st == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::OUT_OF_MEMORY : ErrorCode::DEVICE_ERROR, call,
                        __FILE__, __LINE__);
    };
    const cublasComputeType_t compute = key.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    if (!check(l.api.DescCreate(&p.desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate")) return;
    const int32_t op_w = key.op_w, op_x = key.op_x;
    const uint32_t epilogue = key.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    const int32_t bias_type = int32_t(type);  // the bias has D's type (cuBLASLt guide, BIAS_DATA_TYPE)
    auto set = [&](cublasLtMatmulDescAttributes_t attr, const void* v, size_t size, const char* call) {
        return check(l.api.DescSetAttribute(p.desc, attr, v, size), call);
    };
    if (!set(CUBLASLT_MATMUL_DESC_TRANSA, &op_w, sizeof op_w, "cublasLtMatmulDescSetAttribute(TRANSA)") ||
        !set(CUBLASLT_MATMUL_DESC_TRANSB, &op_x, sizeof op_x, "cublasLtMatmulDescSetAttribute(TRANSB)") ||
        !set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue, "cublasLtMatmulDescSetAttribute(EPILOGUE)"))
        return;
    if (key.bias &&
        (!set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type,
              "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)") ||
         !set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias, "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")))
        return;
    // Column-major: A = w side (op N: stored [N, K]; op T: stored [K, N]), B = x side ([K, M] or [M, K]),
    // C and D [N, M] (D packed, ld N; C the residual's row stride).
    const uint64_t n = uint64_t(key.n), m = uint64_t(key.m), k = uint64_t(key.k);
    const bool tw = key.op_w != CUBLAS_OP_N, tx = key.op_x != CUBLAS_OP_N;
    if (!check(l.api.LayoutCreate(&p.a, type, tw ? k : n, tw ? n : k, key.ld_w), "cublasLtMatrixLayoutCreate(A)") ||
        !check(l.api.LayoutCreate(&p.b, type, tx ? m : k, tx ? k : m, key.ld_x), "cublasLtMatrixLayoutCreate(B)") ||
        !check(l.api.LayoutCreate(&p.d, type, n, m, int64_t(n)), "cublasLtMatrixLayoutCreate(D)"))
        return;
    if (key.ld_c >= 0 && !check(l.api.LayoutCreate(&p.c, type, n, m, key.ld_c), "cublasLtMatrixLayoutCreate(C)"))
        return;
    cublasLtMatmulPreference_t pref = nullptr;
    if (!check(l.api.PrefCreate(&pref), "cublasLtMatmulPreferenceCreate")) return;
    const uint64_t ws = l.workspace_bytes;
    // F16/BF16: split-K partial sums only in fp32 (COMPUTE_TYPE), never in the output type (INPLACE sums in D,
    // OUTPUT_TYPE in the workspace at D's precision), as CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION does.
    const uint32_t reductions = key.dtype == int(DType::F32) ? uint32_t(CUBLASLT_REDUCTION_SCHEME_MASK)
                                                             : uint32_t(CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE);
    const uint32_t align_c = key.ld_c >= 0 ? key.align_c : key.align_d;
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t st = l.api.PrefSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = l.api.PrefSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reductions, sizeof reductions);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = l.api.PrefSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_w, sizeof key.align_w);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = l.api.PrefSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_x, sizeof key.align_x);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = l.api.PrefSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = l.api.PrefSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_d, sizeof key.align_d);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = l.api.AlgoGetHeuristic(l.handle, p.desc, p.a, p.b, p.c ? p.c : p.d, p.d, pref, 1, &result, &found);
    (void)l.api.PrefDestroy(pref);
    if (!check(st, "cublasLtMatmulAlgoGetHeuristic")) return;
    if (found < 1 || result.state != CUBLAS_STATUS_SUCCESS) {  // no algorithm for this case: the fallback
        l.destroy(p);
        return;
    }
    p.algo = result.algo;
    p.ok = true;
    plan = p;
}

// y [M, N] (row-major, contiguous) = x [M, K] w^T + b + residual in one cublasLtMatmul. false: cuBLASLt cannot do
// this case (take the cuBLAS path); a real failure throws.
bool lt_linear(Lt& l, DType dt, const Operand& x, const Operand& w, const Tensor& bias, const Tensor& residual,
               int64_t m, int64_t n, int64_t k, void* y) {
    const cudaDataType type = data_type(dt, "linear");
    for (auto [v, what] : {std::pair<int64_t, const char*>{m, "M"}, {n, "N"}, {k, "K"}, {w.ld, "lda"}, {x.ld, "ldb"}})
        (void)to_int(v, what, "linear");
    // The residual as C [N, M] column-major = a row-major [M, N] view with unit column stride and one row stride
    // >= N. Other strides (e.g. a permuted view) are copied to a contiguous tensor first: one copy pass, and the
    // addition still happens in the epilogue.
    Tensor c;
    int64_t ld_c = -1;
    if (residual.defined()) {
        c = as_rows(residual);  // [M, N]
        const auto fits = [&](const Tensor& t) {
            return (n <= 1 || t.strides()[1] == 1) && (m <= 1 || t.strides()[0] >= n);
        };
        if (!fits(c)) c = residual.contiguous().view({m, n});
        ld_c = m <= 1 ? n : c.strides()[0];
        (void)to_int(ld_c, "ldc", "linear");
    }
    LtKey key{};
    key.dtype = int(dt);
    key.tf32 = dt == DType::F32 && tf32_enabled();
    key.op_w = int(w.op), key.op_x = int(x.op);
    key.m = m, key.n = n, key.k = k, key.ld_w = w.ld, key.ld_x = x.ld, key.ld_c = ld_c;
    key.bias = bias.defined();
    key.align_w = alignment(w.ptr), key.align_x = alignment(x.ptr), key.align_d = alignment(y);
    key.align_c = c.defined() ? alignment(c.raw_data()) : key.align_d;
    key.align_bias = bias.defined() ? alignment(bias.raw_data()) : 256;
    const void* bias_ptr = bias.defined() ? bias.raw_data() : nullptr;

    std::lock_guard<std::mutex> lock(l.mu);
    auto it = l.plans.find(key);
    if (it == l.plans.end()) {
        if (l.plans.size() >= kLtMaxPlans) {
            for (auto& kv : l.plans) l.destroy(kv.second);
            l.plans.clear();
        }
        LtPlan plan;
        build_plan(l, key, type, bias_ptr, plan);
        it = l.plans.emplace(key, plan).first;
    }
    LtPlan& plan = it->second;
    if (!plan.ok) return false;
    if (bias_ptr)
        SDXL_CUBLASLT_CHECK(
            l.api.DescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof bias_ptr));
    const float alpha = 1.0f, beta = c.defined() ? 1.0f : 0.0f;
    // Without a residual, beta = 0 and C is D itself (the in-place form, C == D with Cdesc == Ddesc): not read.
    const void* c_ptr = c.defined() ? c.raw_data() : y;
    profile::count_device_call();
    const cublasStatus_t st =
        l.api.Matmul(l.handle, plan.desc, &alpha, w.ptr, plan.a, x.ptr, plan.b, &beta, c_ptr, plan.c ? plan.c : plan.d,
                     y, plan.d, &plan.algo, l.workspace, l.workspace_bytes, stream());
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) {  // remembered: this case takes the cuBLAS path from now on
        l.destroy(plan);
        return false;
    }
    if (st != CUBLAS_STATUS_SUCCESS)
        libs::fail_call("cuBLASLt", int(st), status_name(st),
                        st == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::OUT_OF_MEMORY : ErrorCode::DEVICE_ERROR,
                        "cublasLtMatmul", __FILE__, __LINE__);
    return true;
}

#endif  // SDXL_HAVE_CUBLASLT

// The cuBLAS path of linear: y starts as the broadcast bias, or residual + bias (one add kernel), or a copy of
// the residual, and the GEMM accumulates onto it (beta = 1). y [..., N], x2 [M, K].
Tensor cublas_linear(const Tensor& x2, const Tensor& w, const Tensor& bias, const Tensor& residual,
                     const Shape& out_shape, DType dt, int64_t m, int64_t n, int64_t k) {
    Tensor y;
    float beta = 1.0f;
    if (residual.defined()) {
        y = bias.defined() ? cuda_backend().add(residual, bias, out_shape) : residual.clone();  // fresh, contiguous
    } else if (bias.defined()) {
        y = Tensor::empty(out_shape, dt, Device::CUDA);
        fill_bias(y.raw_data(), bias.raw_data(), dtype_size(dt), m, n, 1);
    } else {
        y = k == 0 ? Tensor::zeros(out_shape, dt, Device::CUDA) : Tensor::empty(out_shape, dt, Device::CUDA);
        beta = 0.0f;
    }
    if (k == 0) return y;  // empty sums: the bias and residual (or zeros)
    const Operand a = matrix(x2, false);
    const Operand wt = matrix(w, true);  // w^T [K, N]
    gemm("linear", dt, a, 0, wt, 0, m, n, k, 1, beta, y.raw_data());
    return y;
}

// y [..., N] = x [..., K] @ w [N, K]^T + b + residual (residual: exactly y's shape, any strides, or undefined)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual) {
    const int64_t k = w.shape()[1], n = w.shape()[0];
    Shape out_shape = x.shape();
    out_shape.back() = n;
    if (shape_numel(out_shape) == 0) return Tensor::empty(out_shape, x.dtype(), Device::CUDA);
    (void)data_type(x.dtype(), "linear");
    const Tensor x2 = as_rows(x);  // [M, K]
    const int64_t m = x2.shape()[0];
    const Tensor bc = b.defined() ? b.contiguous() : Tensor();
#if defined(SDXL_HAVE_CUBLASLT)
    if (k > 0 && !force_cublas().load()) {
        if (Lt* l = lt()) {
            Tensor y = Tensor::empty(out_shape, x.dtype(), Device::CUDA);
            const Operand a = matrix(x2, false);
            const Operand wt = matrix(w, true);  // w^T [K, N]
            if (lt_linear(*l, x.dtype(), a, wt, bc, residual, m, n, k, y.raw_data())) {
                ++g_lt_calls;
                return y;
            }
        }
    }
#endif
    ++g_cublas_calls;
    return cublas_linear(x2, w, bc, residual, out_shape, x.dtype(), m, n, k);
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
LinearPaths linear_paths() { return {g_lt_calls.load(), g_cublas_calls.load()}; }
void force_cublas_linear(bool on) { force_cublas().store(on); }
}  // namespace libs

}  // namespace sdxl::cuda

#else  // no cuBLAS headers at build time: linear/matmul stay null (UNSUPPORTED), see cmake/SdxlCudaLibs.cmake

namespace sdxl::cuda {

void register_gemm_ops(Backend&) {}

namespace libs {
bool gemm_compiled() { return false; }
LinearPaths linear_paths() { return {}; }
void force_cublas_linear(bool) {}
}  // namespace libs

}  // namespace sdxl::cuda

#endif
