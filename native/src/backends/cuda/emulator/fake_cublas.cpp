// A host test double of cuBLAS 13 (libcublas.so.13) for the CUDA emulator: the entry points the backend
// resolves (cuda_gemm.cpp, cuda_libs.cpp) plus the cheap helpers around them, written from NVIDIA's cuBLAS
// Library User Guide (cited below as "cuBLAS guide", with the section of the function concerned). Nothing here
// is derived from NVIDIA's code; the real headers are included so that the compiler checks every signature.
//
// The emulated device runs everything synchronously and in order, so a stream is only remembered, except that
// while it captures a graph a GEMM is recorded as a node (sdxl_emu::enqueue) with copies of its arguments (host
// scalars by value, as cuBLAS reads them at the call). Workspace (cuBLAS guide, "cublasSetWorkspace()",
// "cublasSetStream()" and "CUDA Graphs Support"): a user workspace set with cublasSetWorkspace is used until
// cublasSetStream resets the handle to the library's default pool; a GEMM on a capturing stream without a user
// workspace makes the fake allocate its default workspace with cudaMalloc, which stream capture refuses outside
// relaxed mode, so code that forgets the workspace fails its capture here as it may on a GPU. Device memory
// is host memory handed out by the emulator's cudaMalloc: every pointer the call dereferences is first checked
// against the emulator's allocation table (emu_runtime.h) over the exact element range the call touches; a bad
// one is reported as cudaErrorIllegalAddress (700) and the call returns CUBLAS_STATUS_EXECUTION_FAILED, which is
// what a kernel fault inside a real cuBLAS kernel looks like to the caller.
//
// Numerics: products are accumulated in fp32 (float), in order of increasing k for each output element (so the
// result does not depend on the blocking below), then alpha * acc + beta * C is formed in fp32 and rounded once
// to C's type, round-to-nearest-even (core/half.h). CUBLAS_COMPUTE_16F therefore gets an fp32 accumulator here,
// more precise than a GPU may be: the guide only promises "at least" the compute type's precision for the
// non-pedantic types, and the fake takes the precise end.
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "backends/cuda/emulator/emu_runtime.h"
#include "backends/cuda/emulator/fake_common.h"
#include "backends/cuda/emulator/fake_gemm.h"
#include "core/half.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
    void* workspace = nullptr;          // user workspace (cublasSetWorkspace), null: the default pool
    size_t workspace_bytes = 0;
    std::vector<void*> default_pool;    // what the default pool allocated (freed by cublasDestroy)
};

namespace {

using sdxl_emu::Ty;
using sdxl_emu::ty_size;
using sdxl_emu::load;
using sdxl_emu::store;
using sdxl_emu::InputRounding;
using sdxl_emu::device_ok;
using sdxl_emu::fill_panel;
using sdxl_emu::gemm_accumulate;
using sdxl_emu::operand_extent;
using sdxl_emu::read_scalar;
using sdxl_emu::round_inputs;

// Live handles (fake_common.h).
sdxl_emu::LiveHandles<cublasContext>& handles() { return sdxl_emu::LiveHandles<cublasContext>::instance(); }
bool live(const cublasContext* h) { return handles().live(h); }

// One supported (Atype, Btype, Ctype, computeType) combination.
struct Config {
    Ty ab;                 // Atype == Btype
    Ty c;                  // Ctype
    bool half_scalars;     // alpha/beta are __half (CUBLAS_COMPUTE_16F) instead of float
    InputRounding rounding;
};

bool to_ty(cudaDataType t, Ty* out) {
    switch (t) {
        case CUDA_R_32F: *out = Ty::F32; return true;
        case CUDA_R_16F: *out = Ty::F16; return true;
        case CUDA_R_16BF: *out = Ty::BF16; return true;
        default: return false;
    }
}

// cuBLAS guide, cublasGemmEx(): the table of supported combinations of computeType, scaleType, Atype/Btype and
// Ctype. The fake implements the real-valued floating-point rows of that table:
//   CUBLAS_COMPUTE_16F[_PEDANTIC]: scale 16F, A/B 16F, C 16F;
//   CUBLAS_COMPUTE_32F[_PEDANTIC]: scale 32F, A/B/C 32F; A/B 16F with C 16F or 32F; A/B 16BF with C 16BF or 32F;
//   CUBLAS_COMPUTE_32F_FAST_16F / _FAST_16BF / _FAST_TF32: scale 32F, A/B/C 32F.
// Anything else (64F, integer, complex, FP8, mixed A/B types) is CUBLAS_STATUS_NOT_SUPPORTED ("the combination
// of the parameters Atype, Btype and Ctype ... is not supported").
// Math mode: per the guide's cublasMath_t table, CUBLAS_TF32_TENSOR_OP_MATH allows single-precision routines to
// use TF32 tensor cores; the fake applies that (the worst case it allows) to the non-pedantic CUBLAS_COMPUTE_32F
// with all-32F data. CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION is a flag the fake always satisfies (it
// never reduces in the output precision).
bool config_for(cudaDataType at, cudaDataType bt, cudaDataType ct, cublasComputeType_t compute, cublasMath_t math,
                Config* cfg) {
    Ty a, b, c;
    if (!to_ty(at, &a) || !to_ty(bt, &b) || !to_ty(ct, &c) || a != b) return false;
    cfg->ab = a;
    cfg->c = c;
    cfg->half_scalars = false;
    cfg->rounding = InputRounding::None;
    const bool all32 = a == Ty::F32 && c == Ty::F32;
    switch (compute) {
        case CUBLAS_COMPUTE_16F:
        case CUBLAS_COMPUTE_16F_PEDANTIC:
            cfg->half_scalars = true;
            return a == Ty::F16 && c == Ty::F16;
        case CUBLAS_COMPUTE_32F:
            if (all32 && (int(math) & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH) cfg->rounding = InputRounding::TF32;
            [[fallthrough]];
        case CUBLAS_COMPUTE_32F_PEDANTIC:
            return all32 || (a == Ty::F16 && (c == Ty::F16 || c == Ty::F32)) ||
                   (a == Ty::BF16 && (c == Ty::BF16 || c == Ty::F32));
        case CUBLAS_COMPUTE_32F_FAST_TF32:
            cfg->rounding = InputRounding::TF32;
            return all32;
        case CUBLAS_COMPUTE_32F_FAST_16F:
            cfg->rounding = InputRounding::F16;
            return all32;
        case CUBLAS_COMPUTE_32F_FAST_16BF:
            cfg->rounding = InputRounding::BF16;
            return all32;
        default:
            return false;
    }
}

// cublasGemmAlgo_t values from the header; the fake runs them all the same way (the guide: the algorithm only
// selects an implementation, and CUBLAS_GEMM_DEFAULT_TENSOR_OP and the _TENSOR_OP values are deprecated aliases
// that behave as the default). Other values: NOT_SUPPORTED ("or the algorithm, algo is not supported").
bool algo_ok(cublasGemmAlgo_t algo) {
    const int a = int(algo);
    return a == CUBLAS_GEMM_DEFAULT || (a >= CUBLAS_GEMM_ALGO0 && a <= CUBLAS_GEMM_ALGO23) ||
           (a >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && a <= CUBLAS_GEMM_ALGO15_TENSOR_OP) || a == CUBLAS_GEMM_AUTOTUNE;
}

cublasStatus_t gemm(const char* call, cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                    int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
                    long long strideA, const void* B, cudaDataType Btype, int ldb, long long strideB,
                    const void* beta, void* C, cudaDataType Ctype, int ldc, long long strideC, int batchCount,
                    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    // cuBLAS guide, cublasGemmEx() / cublasGemmStridedBatchedEx(), "Return values":
    // CUBLAS_STATUS_NOT_INITIALIZED: the library was not initialized (here: no live handle).
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    // CUBLAS_STATUS_INVALID_VALUE: transa/transb not CUBLAS_OP_N, CUBLAS_OP_T or CUBLAS_OP_C (CUBLAS_OP_CONJG is
    // "not supported in the current release"), m, n or k < 0, lda < max(1, m) when transa == CUBLAS_OP_N else
    // lda < max(1, k), ldb < max(1, k) when transb == CUBLAS_OP_N else ldb < max(1, n), ldc < max(1, m),
    // batchCount < 0, alpha or beta NULL.
    auto op_ok = [](cublasOperation_t o) { return o == CUBLAS_OP_N || o == CUBLAS_OP_T || o == CUBLAS_OP_C; };
    if (!op_ok(transa) || !op_ok(transb)) return CUBLAS_STATUS_INVALID_VALUE;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    if (lda < std::max(1, ta ? k : m)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldb < std::max(1, tb ? n : k)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
    if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    // CUBLAS_STATUS_NOT_SUPPORTED: the type combination or the algorithm is not supported.
    Config cfg;
    if (!config_for(Atype, Btype, Ctype, computeType, handle->math, &cfg) || !algo_ok(algo))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    // Empty problems: nothing to compute or touch (BLAS convention: quick return when m == 0 or n == 0).
    if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;

    // Scalars: host pointers in CUBLAS_POINTER_MODE_HOST (the default), device pointers in _DEVICE (cuBLAS guide,
    // "Scalar Parameters"); __half for CUBLAS_COMPUTE_16F, float otherwise (the scaleType of the table above).
    const size_t scalar_size = cfg.half_scalars ? 2 : 4;
    if (handle->pointer_mode == CUBLAS_POINTER_MODE_DEVICE) {
        if (!device_ok(call, "alpha", alpha, scalar_size, "scalar") ||
            !device_ok(call, "beta", beta, scalar_size, "scalar"))
            return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    // Host scalars are read now (a captured call keeps their values); device scalars when the GEMM runs.
    const bool device_scalars = handle->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
    const float host_a = device_scalars ? 0.0f : read_scalar(alpha, cfg.half_scalars);
    const float host_b = device_scalars ? 0.0f : read_scalar(beta, cfg.half_scalars);

    // Device ranges. A is stored lda x (ta ? m : k) and op(A) reads (ta ? k : m) rows of each stored column;
    // B likewise; C is ldc x n with m rows read/written. A and B are not read when k == 0 (C = beta * C).
    const size_t ab_size = ty_size(cfg.ab), c_size = ty_size(cfg.c);
    const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    const int64_t batches = batchCount;
    {
        auto describe = [](const char* name, int64_t rows, int64_t cols, int64_t ld, long long stride,
                           int64_t batch) {
            std::ostringstream s;
            s << name << " " << rows << "x" << cols << " ld " << ld;
            if (batch > 1) s << " stride " << stride << " batches " << batch;
            return s.str();
        };
        int64_t lo;
        size_t bytes;
        if (k > 0) {
            operand_extent((a_cols - 1) * int64_t(lda) + a_rows, strideA, batches, ab_size, &lo, &bytes);
            if (!device_ok(call, "A", static_cast<const char*>(A) + lo * int64_t(ab_size), bytes,
                           describe("stored", a_rows, a_cols, lda, strideA, batches)))
                return CUBLAS_STATUS_EXECUTION_FAILED;
            operand_extent((b_cols - 1) * int64_t(ldb) + b_rows, strideB, batches, ab_size, &lo, &bytes);
            if (!device_ok(call, "B", static_cast<const char*>(B) + lo * int64_t(ab_size), bytes,
                           describe("stored", b_rows, b_cols, ldb, strideB, batches)))
                return CUBLAS_STATUS_EXECUTION_FAILED;
        }
        operand_extent((int64_t(n) - 1) * ldc + m, strideC, batches, c_size, &lo, &bytes);
        if (!device_ok(call, "C", static_cast<const char*>(C) + lo * int64_t(c_size), bytes,
                       describe("", m, n, ldc, strideC, batches)))
            return CUBLAS_STATUS_EXECUTION_FAILED;
    }

    // Without a user workspace, work on a capturing stream draws on the default pool: a cudaMalloc (see top).
    if (!handle->workspace && sdxl_emu::stream_capturing(handle->stream)) {
        void* pool = nullptr;
        if (cudaMalloc(&pool, size_t(1) << 20) != cudaSuccess) return CUBLAS_STATUS_ALLOC_FAILED;
        handle->default_pool.push_back(pool);
    }
    auto run = [=]() -> cudaError_t {
        const float a_s = device_scalars ? read_scalar(alpha, cfg.half_scalars) : host_a;
        const float b_s = device_scalars ? read_scalar(beta, cfg.half_scalars) : host_b;
        std::vector<float> Af(k > 0 ? size_t(m) * size_t(k) : 0), Bf(k > 0 ? size_t(k) * size_t(n) : 0);
        std::vector<float> acc(size_t(m) * size_t(n));
        const void* last_a = nullptr;
        const void* last_b = nullptr;
        for (int64_t bi = 0; bi < batches; ++bi) {
            const void* a = static_cast<const char*>(A) + bi * int64_t(strideA) * int64_t(ab_size);
            const void* b = static_cast<const char*>(B) + bi * int64_t(strideB) * int64_t(ab_size);
            void* c = static_cast<char*>(C) + bi * int64_t(strideC) * int64_t(c_size);
            std::fill(acc.begin(), acc.end(), 0.0f);
            if (k > 0) {
                if (bi == 0 || a != last_a) {  // a batch stride of 0 broadcasts one matrix: convert it once
                    fill_panel(Af.data(), a, cfg.ab, ta, m, k, lda);
                    round_inputs(Af.data(), Af.size(), cfg.rounding);
                    last_a = a;
                }
                if (bi == 0 || b != last_b) {
                    fill_panel(Bf.data(), b, cfg.ab, tb, k, n, ldb);
                    round_inputs(Bf.data(), Bf.size(), cfg.rounding);
                    last_b = b;
                }
                gemm_accumulate(m, n, k, Af.data(), Bf.data(), acc.data());
            }
            // C = alpha * acc + beta * C. cuBLAS guide, "cublas<t>gemm()": "if beta == 0 then C does not have to
            // be a valid input" - C is not read then, so NaN or Inf already in C does not propagate.
            for (int64_t j = 0; j < n; ++j) {
                const float* col = acc.data() + j * int64_t(m);
                const int64_t base = j * int64_t(ldc);
                if (b_s == 0.0f) {
                    for (int64_t i = 0; i < m; ++i) store(c, base + i, cfg.c, a_s * col[i]);
                } else {
                    for (int64_t i = 0; i < m; ++i)
                        store(c, base + i, cfg.c, a_s * col[i] + b_s * load(c, base + i, cfg.c));
                }
            }
        }
        return cudaSuccess;
    };
    try {
        const cudaError_t e = sdxl_emu::enqueue(handle->stream, call, std::move(run));
        if (e != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    } catch (const std::bad_alloc&) {
        return CUBLAS_STATUS_ALLOC_FAILED;  // the host memory behind the emulated device ran out
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

// cuBLAS guide, "cublasCreate()": INVALID_VALUE when handle == NULL; ALLOC_FAILED when resources could not be
// allocated.
cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    cublasContext* ctx = new (std::nothrow) cublasContext();
    if (!ctx) return CUBLAS_STATUS_ALLOC_FAILED;
    handles().add(ctx);
    *handle = ctx;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS guide, "cublasDestroy()": NOT_INITIALIZED when the library was not initialized (here: not a live handle).
cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
    if (!handles().remove(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    for (void* p : handle->default_pool) (void)cudaFree(p);
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS guide, "cublasGetVersion()": major * 10000 + minor * 100 + patch (CUBLAS_VERSION of the header: 13.x).
cublasStatus_t CUBLASWINAPI cublasGetVersion_v2(cublasHandle_t handle, int* version) {
    (void)handle;  // the version does not depend on the handle
    if (!version) return CUBLAS_STATUS_INVALID_VALUE;
    *version = CUBLAS_VERSION;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS guide, "cublasGetProperty()": MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL; INVALID_VALUE otherwise.
cublasStatus_t CUBLASWINAPI cublasGetProperty(libraryPropertyType type, int* value) {
    if (!value) return CUBLAS_STATUS_INVALID_VALUE;
    switch (type) {
        case MAJOR_VERSION: *value = CUBLAS_VER_MAJOR; return CUBLAS_STATUS_SUCCESS;
        case MINOR_VERSION: *value = CUBLAS_VER_MINOR; return CUBLAS_STATUS_SUCCESS;
        case PATCH_LEVEL: *value = CUBLAS_VER_PATCH; return CUBLAS_STATUS_SUCCESS;
        default: return CUBLAS_STATUS_INVALID_VALUE;
    }
}

// cuBLAS guide, "cublasSetStream()": any stream (NULL = the default stream). The emulated device is synchronous.
cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    handle->workspace = nullptr;  // "unconditionally resets the cuBLAS library workspace back to the default pool"
    handle->workspace_bytes = 0;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS guide, "cublasSetWorkspace()": the user-owned device buffer used by all later calls on the current
// stream, until cublasSetStream resets it. INVALID_VALUE when the pointer is not 256-byte aligned (the guide
// requires at least that alignment) or a non-zero size comes with a NULL pointer; the buffer must be device memory
// of that size (checked here: EXECUTION_FAILED and an illegal address otherwise).
cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes) {
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((!workspace && workspaceSizeInBytes) || reinterpret_cast<uintptr_t>(workspace) % 256 != 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (workspace && !device_ok("cublasSetWorkspace", "workspace", workspace, workspaceSizeInBytes, "buffer"))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    handle->workspace = workspace;
    handle->workspace_bytes = workspaceSizeInBytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* streamId) {
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!streamId) return CUBLAS_STATUS_INVALID_VALUE;
    *streamId = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS guide, "cublasSetPointerMode()" / cublasPointerMode_t: HOST or DEVICE; INVALID_VALUE otherwise.
cublasStatus_t CUBLASWINAPI cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
    handle->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t* mode) {
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS guide, "cublasSetMathMode()" / cublasMath_t: one of the modes (DEFAULT, the deprecated TENSOR_OP, PEDANTIC,
// TF32_TENSOR_OP, FP32_EMULATED_BF16X9, FP64_EMULATED_FIXEDPOINT), optionally OR-ed with the flag
// CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION; INVALID_VALUE for anything else.
cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    const unsigned m = unsigned(mode);
    const unsigned flags = m & ~0xfu, base = m & 0xfu;
    const bool base_ok = base == CUBLAS_DEFAULT_MATH || base == CUBLAS_TENSOR_OP_MATH || base == CUBLAS_PEDANTIC_MATH ||
                         base == CUBLAS_TF32_TENSOR_OP_MATH || base == CUBLAS_FP32_EMULATED_BF16X9_MATH ||
                         base == CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH;
    if (!base_ok || (flags & ~unsigned(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) != 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS guide, "cublasGetStatusName()": the enumerator's name; "cublasGetStatusString()": a description.
const char* CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
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
    return "CUBLAS_STATUS_UNKNOWN";
}

const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the cuBLAS library was not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED: return "resource allocation failed inside the cuBLAS library";
        case CUBLAS_STATUS_INVALID_VALUE: return "an unsupported value or parameter was passed to the function";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "the function requires a feature absent from the device architecture";
        case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal cuBLAS operation failed";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        case CUBLAS_STATUS_LICENSE_ERROR: return "the functionality requested requires a license";
    }
    return "unknown cuBLAS status";
}

// cuBLAS guide, "cublasGemmEx()": C = alpha * op(A) op(B) + beta * C, column-major; a strided batch of one.
cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype,
                                         int lda, const void* B, cudaDataType Btype, int ldb, const void* beta,
                                         void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                                         cublasGemmAlgo_t algo) {
    return gemm("cublasGemmEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C,
                Ctype, ldc, 0, 1, computeType, algo);
}

// cuBLAS guide, "cublasGemmStridedBatchedEx()": C + i*strideC = alpha * op(A + i*strideA) op(B + i*strideB) +
// beta * (C + i*strideC) for i in [0, batchCount); strides in elements.
cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void* alpha,
    const void* A, cudaDataType Atype, int lda, long long int strideA, const void* B, cudaDataType Btype, int ldb,
    long long int strideB, const void* beta, void* C, cudaDataType Ctype, int ldc, long long int strideC,
    int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    return gemm("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B,
                Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo);
}

}  // extern "C"
