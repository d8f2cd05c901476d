// A host test double of cuBLASLt 13 (libcublasLt.so.13) for the CUDA emulator: the entry points the backend resolves
// for linear's fused epilogues (cuda_gemm.cpp) plus the cheap helpers around them, written from NVIDIA's cuBLAS
// Library User Guide, chapter "Using the cuBLASLt API" (cited below as "cuBLASLt guide", with the function or type
// concerned) and the comments of cublasLt.h. Nothing here is derived from NVIDIA's code; the real header is included
// so that the compiler checks every signature.
//
// What it computes: D = alpha * op(A) op(B) + beta * C, then the epilogue (DEFAULT: nothing; BIAS: + bias[row],
// broadcast over the columns), column-major, strided batches. Numerics as the fake cuBLAS (fake_gemm.h): products
// summed in fp32 in order of increasing k, then alpha * acc + beta * C + bias formed in fp32 and rounded once to D's
// type. C is not read when beta == 0.
//
// What it checks, the statuses a caller sees from the real library for our use: dimensions that do not agree, leading
// dimensions below the rows, C == D with a different layout (in-place needs Cdesc == Ddesc), NULL descriptors or
// scalars, a workspace smaller than the algorithm asked for or not 256-byte aligned, unknown attributes or wrong
// attribute sizes: CUBLAS_STATUS_INVALID_VALUE; type combinations outside the guide's table of cublasLtMatmul, a bias
// type other than D's: CUBLAS_STATUS_NOT_SUPPORTED. Device pointers are checked as the fake cuBLAS does (a bad one is
// cudaErrorIllegalAddress and CUBLAS_STATUS_EXECUTION_FAILED).
//
// The fake's own choices, where the real library's behaviour depends on its kernels: the heuristic returns one
// algorithm; it requires the operand alignments the preference promised (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*, capped
// at 16 bytes, at least one element) and the bias pointer's alignment at the time of the query, and cublasLtMatmul
// rejects less aligned pointers with INVALID_VALUE (on a GPU such a kernel would fault or be refused); it asks for
// 1 MiB of workspace when the preference allows that much, and fills it with NaN bytes when it runs, so a workspace
// shared with live data shows. Layout orders other than CUBLASLT_ORDER_COL, the other epilogues, scaling pointers and
// similar attributes the backend does not use are CUBLAS_STATUS_NOT_SUPPORTED here.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cuda/emulator/emu_runtime.h"
#include "backends/cuda/emulator/fake_common.h"
#include "backends/cuda/emulator/fake_gemm.h"
#include "core/half.h"

struct cublasLtContext {
    int unused = 0;
};

namespace {

using sdxl_emu::device_ok;
using sdxl_emu::fill_panel;
using sdxl_emu::gemm_accumulate;
using sdxl_emu::InputRounding;
using sdxl_emu::load;
using sdxl_emu::operand_extent;
using sdxl_emu::round_inputs;
using sdxl_emu::store;
using sdxl_emu::Ty;
using sdxl_emu::ty_size;

// Behind cublasLtMatmulDesc_t; defaults from cublasLtMatmulDescAttributes_t.
struct Desc {
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    int32_t scale = CUDA_R_32F;
    int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N, transc = CUBLAS_OP_N;
    int32_t fill_mode = CUBLAS_FILL_MODE_FULL;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void* bias = nullptr;
    int32_t bias_type = -1;  // -1: D's type
    int64_t bias_batch_stride = 0;
};

// Behind cublasLtMatrixLayout_t; defaults from cublasLtMatrixLayoutAttribute_t.
struct Layout {
    uint32_t type = CUDA_R_32F;
    int32_t order = CUBLASLT_ORDER_COL;
    uint64_t rows = 0, cols = 0;
    int64_t ld = 0;
    int32_t batch = 1;
    int64_t batch_stride = 0;
    int64_t plane_offset = 0;
    uint32_t batch_mode = CUBLASLT_BATCH_MODE_STRIDED;
    bool same_as(const Layout& o) const {
        return type == o.type && order == o.order && rows == o.rows && cols == o.cols && ld == o.ld &&
               batch == o.batch && batch_stride == o.batch_stride;
    }
};

// Behind cublasLtMatmulPreference_t; defaults from cublasLtMatmulPreferenceAttributes_t.
struct Pref {
    uint32_t search_mode = CUBLASLT_SEARCH_BEST_FIT;
    uint64_t max_workspace = 0;
    uint32_t reduction_mask = CUBLASLT_REDUCTION_SCHEME_MASK;
    uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D
    float max_waves = 0.0f;
    uint64_t impl_mask = ~uint64_t(0);
};

template <typename T>
sdxl_emu::LiveHandles<T>& live_set() {
    return sdxl_emu::LiveHandles<T>::instance();
}
bool live_handle(const cublasLtContext* h) { return live_set<cublasLtContext>().live(h); }
Desc* as_desc(cublasLtMatmulDesc_t d) {
    Desc* p = reinterpret_cast<Desc*>(d);
    return live_set<Desc>().live(p) ? p : nullptr;
}
Layout* as_layout(cublasLtMatrixLayout_t l) {
    Layout* p = reinterpret_cast<Layout*>(l);
    return live_set<Layout>().live(p) ? p : nullptr;
}
Pref* as_pref(cublasLtMatmulPreference_t l) {
    Pref* p = reinterpret_cast<Pref*>(l);
    return live_set<Pref>().live(p) ? p : nullptr;
}

template <typename T, typename Handle>
cublasStatus_t create(Handle* out) {
    if (!out) return CUBLAS_STATUS_INVALID_VALUE;
    T* p = new (std::nothrow) T();
    if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
    live_set<T>().add(p);
    *out = reinterpret_cast<Handle>(p);
    return CUBLAS_STATUS_SUCCESS;
}

// Destroying NULL is a no-op (as free); anything else must be a live descriptor of that kind.
template <typename T, typename Handle>
cublasStatus_t destroy(Handle h) {
    if (!h) return CUBLAS_STATUS_SUCCESS;
    T* p = reinterpret_cast<T*>(h);
    if (!live_set<T>().remove(p)) return CUBLAS_STATUS_INVALID_VALUE;
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}

// An attribute write: "CUBLAS_STATUS_INVALID_VALUE if buf is NULL or sizeInBytes doesn't match size of internal
// storage for selected attribute" (cublasLt.h, the *SetAttribute functions).
template <typename V>
cublasStatus_t put(V* field, const void* buf, size_t size) {
    if (!buf || size != sizeof(V)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(field, buf, sizeof(V));
    return CUBLAS_STATUS_SUCCESS;
}

// The algorithm descriptor the fake hands out (cublasLtMatmulAlgo_t is 8 opaque uint64_t).
constexpr uint64_t kAlgoMagic = 0x53444c5846414b45ull;  // "SDLXFAKE"
constexpr uint64_t kFakeWorkspace = uint64_t(1) << 20;
struct AlgoNeeds {
    uint64_t workspace = 0;
    uint32_t align[5] = {1, 1, 1, 1, 1};  // A, B, C, D, bias (bytes)
};
void encode(const AlgoNeeds& n, cublasLtMatmulAlgo_t* algo) {
    std::memset(algo, 0, sizeof *algo);
    algo->data[0] = kAlgoMagic;
    algo->data[1] = n.workspace;
    for (int i = 0; i < 5; ++i) algo->data[2 + i] = n.align[i];
}
bool decode(const cublasLtMatmulAlgo_t* algo, AlgoNeeds* n) {
    if (algo->data[0] != kAlgoMagic) return false;
    n->workspace = algo->data[1];
    for (int i = 0; i < 5; ++i) n->align[i] = uint32_t(algo->data[2 + i]);
    return true;
}

uint32_t alignment_of(const void* p) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    return a == 0 ? 256u : uint32_t(std::min<uintptr_t>(a & (~a + 1), 256));
}

bool to_ty(uint32_t t, Ty* out) {
    switch (t) {
        case CUDA_R_32F: *out = Ty::F32; return true;
        case CUDA_R_16F: *out = Ty::F16; return true;
        case CUDA_R_16BF: *out = Ty::BF16; return true;
        default: return false;
    }
}

// One validated problem: sizes, types, operands' layouts.
struct Problem {
    Ty ab = Ty::F32, cd = Ty::F32;
    bool half_scalars = false;  // scale type CUDA_R_16F (CUBLAS_COMPUTE_16F)
    InputRounding rounding = InputRounding::None;
    bool ta = false, tb = false, bias = false;
    int64_t m = 0, n = 0, k = 0, batch = 1;
    const Layout *A = nullptr, *B = nullptr, *C = nullptr, *D = nullptr;
};

// cuBLASLt guide, cublasLtMatmul(), the table of supported data types: the real-valued, non-FP8 rows.
//   CUBLAS_COMPUTE_16F[_PEDANTIC], scale 16F: A/B 16F, C/D 16F;
//   CUBLAS_COMPUTE_32F[_PEDANTIC], scale 32F: A/B 32F with C/D 32F; A/B 16F with C/D 16F or 32F; A/B 16BF with
//   C/D 16BF or 32F;
//   CUBLAS_COMPUTE_32F_FAST_16F / _FAST_16BF / _FAST_TF32, scale 32F: A/B/C/D 32F.
// The bias (CUBLASLT_EPILOGUE_BIAS) has D's type (cublasLt.h, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: the exceptions
// are IMMA and FP8 kernels).
bool types_ok(const Desc& d, uint32_t at, uint32_t bt, uint32_t ct, uint32_t dt, Problem* p) {
    Ty a, b, c, dd;
    if (!to_ty(at, &a) || !to_ty(bt, &b) || !to_ty(ct, &c) || !to_ty(dt, &dd) || a != b || c != dd) return false;
    p->ab = a;
    p->cd = c;
    const bool all32 = a == Ty::F32 && c == Ty::F32;
    switch (d.compute) {
        case CUBLAS_COMPUTE_16F:
        case CUBLAS_COMPUTE_16F_PEDANTIC:
            p->half_scalars = true;
            return d.scale == CUDA_R_16F && a == Ty::F16 && c == Ty::F16;
        case CUBLAS_COMPUTE_32F:
        case CUBLAS_COMPUTE_32F_PEDANTIC:
            return d.scale == CUDA_R_32F && (all32 || (a == Ty::F16 && (c == Ty::F16 || c == Ty::F32)) ||
                                             (a == Ty::BF16 && (c == Ty::BF16 || c == Ty::F32)));
        case CUBLAS_COMPUTE_32F_FAST_TF32: p->rounding = InputRounding::TF32; return d.scale == CUDA_R_32F && all32;
        case CUBLAS_COMPUTE_32F_FAST_16F: p->rounding = InputRounding::F16; return d.scale == CUDA_R_32F && all32;
        case CUBLAS_COMPUTE_32F_FAST_16BF: p->rounding = InputRounding::BF16; return d.scale == CUDA_R_32F && all32;
        default: return false;
    }
}

// The checks common to cublasLtMatmulAlgoGetHeuristic and cublasLtMatmul. Cdesc NULL means Ddesc (cuBLASLt guide,
// cublasLtMatmul: "If Cdesc is omitted, this function assumes it to be equal to Ddesc").
cublasStatus_t check_problem(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                             cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, Problem* p) {
    const Desc* d = as_desc(desc);
    p->A = as_layout(Adesc);
    p->B = as_layout(Bdesc);
    p->D = as_layout(Ddesc);
    p->C = Cdesc ? as_layout(Cdesc) : p->D;
    if (!d || !p->A || !p->B || !p->C || !p->D) return CUBLAS_STATUS_INVALID_VALUE;
    auto op_ok = [](int32_t o) { return o == CUBLAS_OP_N || o == CUBLAS_OP_T || o == CUBLAS_OP_C; };
    if (!op_ok(d->transa) || !op_ok(d->transb) || !op_ok(d->transc)) return CUBLAS_STATUS_INVALID_VALUE;
    if (d->transc != CUBLAS_OP_N) return CUBLAS_STATUS_NOT_SUPPORTED;  // "Currently only CUBLAS_OP_N is supported"
    if (d->fill_mode != CUBLAS_FILL_MODE_FULL) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->pointer_mode != CUBLASLT_POINTER_MODE_HOST && d->pointer_mode != CUBLASLT_POINTER_MODE_DEVICE)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    for (const Layout* l : {p->A, p->B, p->C, p->D})
        if (l->order != CUBLASLT_ORDER_COL || l->plane_offset != 0 || l->batch_mode != CUBLASLT_BATCH_MODE_STRIDED)
            return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!types_ok(*d, p->A->type, p->B->type, p->C->type, p->D->type, p)) return CUBLAS_STATUS_NOT_SUPPORTED;
    p->bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (p->bias && d->bias_type != -1 && uint32_t(d->bias_type) != p->D->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    // Sizes: D is m x n; op(A) m x k; op(B) k x n; C like D.
    p->ta = d->transa != CUBLAS_OP_N;
    p->tb = d->transb != CUBLAS_OP_N;
    const uint64_t m = p->D->rows, n = p->D->cols, k = p->ta ? p->A->rows : p->A->cols;
    if ((p->ta ? p->A->cols : p->A->rows) != m) return CUBLAS_STATUS_INVALID_VALUE;
    if ((p->tb ? p->B->cols : p->B->rows) != k || (p->tb ? p->B->rows : p->B->cols) != n)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (p->C->rows != m || p->C->cols != n) return CUBLAS_STATUS_INVALID_VALUE;
    // "Usually only values that can be expressed as int32_t are supported" (ROWS / COLS).
    if (m > uint64_t(INT_MAX) || n > uint64_t(INT_MAX) || k > uint64_t(INT_MAX)) return CUBLAS_STATUS_NOT_SUPPORTED;
    // LD: "must be large enough so that matrix memory locations are not overlapping (e.g. greater or equal to
    // CUBLASLT_MATRIX_LAYOUT_ROWS in case of CUBLASLT_ORDER_COL)". C alone may have ld 0 when it is not D
    // (cublasLtMatmul: "the leading dimension of C can be 0 to achieve row or column broadcast"); checked with the
    // pointers.
    for (const Layout* l : {p->A, p->B, p->D})
        if (l->ld < int64_t(std::max<uint64_t>(1, l->rows))) return CUBLAS_STATUS_INVALID_VALUE;
    if (p->C->ld != 0 && p->C->ld < int64_t(std::max<uint64_t>(1, m))) return CUBLAS_STATUS_INVALID_VALUE;
    // One batch count for all four (broadcast with a batch stride of 0).
    if (p->A->batch != p->D->batch || p->B->batch != p->D->batch || p->C->batch != p->D->batch)
        return CUBLAS_STATUS_INVALID_VALUE;
    p->m = int64_t(m), p->n = int64_t(n), p->k = int64_t(k), p->batch = p->D->batch;
    return CUBLAS_STATUS_SUCCESS;
}

bool is_known_desc_attribute(int a) {
    switch (a) {
        case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 10: case 11: case 12: case 13:
        case 14: case 15: case 17: case 18: case 19: case 20: case 21: case 22: case 23: case 24: case 25: case 26:
        case 31: case 32: case 33: case 34: case 35: case 36: case 37: case 38:
            return true;
        default:
            return false;
    }
}

std::string extent(const char* name, int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
    std::ostringstream s;
    s << name << " " << rows << "x" << cols << " ld " << ld;
    if (batch > 1) s << " stride " << stride << " batches " << batch;
    return s.str();
}

}  // namespace

extern "C" {

// cuBLASLt guide, cublasLtCreate(): INVALID_VALUE when lightHandle == NULL; ALLOC_FAILED when resources could not be
// allocated.
cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t* lightHandle) {
    return create<cublasLtContext>(lightHandle);
}

// cuBLASLt guide, cublasLtDestroy(): NOT_INITIALIZED when the handle was not initialized (here: not a live handle).
cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
    if (!live_set<cublasLtContext>().remove(lightHandle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete lightHandle;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLASLt guide, cublasLtGetVersion(): the version number of the library (that of cuBLAS: major * 10000 + ...).
size_t CUBLASWINAPI cublasLtGetVersion(void) { return size_t(CUBLAS_VERSION); }

// cuBLASLt guide, cublasLtGetCudartVersion(): the CUDA runtime version the library was built against.
size_t CUBLASWINAPI cublasLtGetCudartVersion(void) { return size_t(CUDART_VERSION); }

// cuBLASLt guide, cublasLtGetProperty(): MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL; INVALID_VALUE otherwise.
cublasStatus_t CUBLASWINAPI cublasLtGetProperty(libraryPropertyType type, int* value) {
    if (!value) return CUBLAS_STATUS_INVALID_VALUE;
    switch (type) {
        case MAJOR_VERSION: *value = CUBLAS_VER_MAJOR; return CUBLAS_STATUS_SUCCESS;
        case MINOR_VERSION: *value = CUBLAS_VER_MINOR; return CUBLAS_STATUS_SUCCESS;
        case PATCH_LEVEL: *value = CUBLAS_VER_PATCH; return CUBLAS_STATUS_SUCCESS;
        default: return CUBLAS_STATUS_INVALID_VALUE;
    }
}

// cuBLASLt guide, cublasLtGetStatusName() / cublasLtGetStatusString().
const char* CUBLASWINAPI cublasLtGetStatusName(cublasStatus_t status) {
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

const char* CUBLASWINAPI cublasLtGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the cuBLASLt library was not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED: return "resource allocation failed inside the cuBLASLt library";
        case CUBLAS_STATUS_INVALID_VALUE: return "an unsupported value or parameter was passed to the function";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "the function requires a feature absent from the device architecture";
        case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal cuBLASLt operation failed";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        case CUBLAS_STATUS_LICENSE_ERROR: return "the functionality requested requires a license";
    }
    return "unknown cuBLAS status";
}

// cuBLASLt guide, cublasLtMatmulDescCreate(): the compute and scale types are checked when the descriptor is used
// (heuristic, matmul), which answer NOT_SUPPORTED for a combination outside the table.
cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType,
                                                     cudaDataType_t scaleType) {
    const cublasStatus_t st = create<Desc>(matmulDesc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    Desc* d = reinterpret_cast<Desc*>(*matmulDesc);
    d->compute = computeType;
    d->scale = int32_t(scaleType);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    return destroy<Desc>(matmulDesc);
}

// cuBLASLt guide, cublasLtMatmulDescSetAttribute() and cublasLtMatmulDescAttributes_t (each attribute's type fixes
// sizeInBytes). Attributes the fake does not compute (scaling factors, AUX buffers, SM targets...) are NOT_SUPPORTED;
// values that are no attribute at all are INVALID_VALUE.
cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                           cublasLtMatmulDescAttributes_t attr, const void* buf,
                                                           size_t sizeInBytes) {
    Desc* d = as_desc(matmulDesc);
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: {
            int32_t v;
            const cublasStatus_t st = put(&v, buf, sizeInBytes);
            if (st == CUBLAS_STATUS_SUCCESS) d->compute = cublasComputeType_t(v);
            return st;
        }
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return put(&d->scale, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_POINTER_MODE: return put(&d->pointer_mode, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_TRANSA: return put(&d->transa, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_TRANSB: return put(&d->transb, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_TRANSC: return put(&d->transc, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_FILL_MODE: return put(&d->fill_mode, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_EPILOGUE: return put(&d->epilogue, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return put(&d->bias, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return put(&d->bias_type, buf, sizeInBytes);
        case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return put(&d->bias_batch_stride, buf, sizeInBytes);
        default:
            return is_known_desc_attribute(int(attr)) ? CUBLAS_STATUS_NOT_SUPPORTED : CUBLAS_STATUS_INVALID_VALUE;
    }
}

// cuBLASLt guide, cublasLtMatrixLayoutCreate(): type, rows, cols and ld; the other attributes at their defaults.
// The values are checked where the layout is used.
cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type,
                                                       uint64_t rows, uint64_t cols, int64_t ld) {
    const cublasStatus_t st = create<Layout>(matLayout);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    Layout* l = reinterpret_cast<Layout*>(*matLayout);
    l->type = uint32_t(type);
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    return destroy<Layout>(matLayout);
}

// cuBLASLt guide, cublasLtMatrixLayoutSetAttribute() and cublasLtMatrixLayoutAttribute_t. A batch count below 1 is
// INVALID_VALUE.
cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout,
                                                             cublasLtMatrixLayoutAttribute_t attr, const void* buf,
                                                             size_t sizeInBytes) {
    Layout* l = as_layout(matLayout);
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
        case CUBLASLT_MATRIX_LAYOUT_TYPE: return put(&l->type, buf, sizeInBytes);
        case CUBLASLT_MATRIX_LAYOUT_ORDER: return put(&l->order, buf, sizeInBytes);
        case CUBLASLT_MATRIX_LAYOUT_ROWS: return put(&l->rows, buf, sizeInBytes);
        case CUBLASLT_MATRIX_LAYOUT_COLS: return put(&l->cols, buf, sizeInBytes);
        case CUBLASLT_MATRIX_LAYOUT_LD: return put(&l->ld, buf, sizeInBytes);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: {
            int32_t v;
            const cublasStatus_t st = put(&v, buf, sizeInBytes);
            if (st != CUBLAS_STATUS_SUCCESS) return st;
            if (v < 1) return CUBLAS_STATUS_INVALID_VALUE;
            l->batch = v;
            return st;
        }
        case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return put(&l->batch_stride, buf, sizeInBytes);
        case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: return put(&l->plane_offset, buf, sizeInBytes);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: return put(&l->batch_mode, buf, sizeInBytes);
        default: return CUBLAS_STATUS_INVALID_VALUE;
    }
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    return create<Pref>(pref);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    return destroy<Pref>(pref);
}

// cuBLASLt guide, cublasLtMatmulPreferenceSetAttribute() and cublasLtMatmulPreferenceAttributes_t.
cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                                 cublasLtMatmulPreferenceAttributes_t attr,
                                                                 const void* buf, size_t sizeInBytes) {
    Pref* p = as_pref(pref);
    if (!p) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
        case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return put(&p->search_mode, buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return put(&p->max_workspace, buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: return put(&p->reduction_mask, buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return put(&p->align[0], buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return put(&p->align[1], buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return put(&p->align[2], buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return put(&p->align[3], buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT: return put(&p->max_waves, buf, sizeInBytes);
        case CUBLASLT_MATMUL_PREF_IMPL_MASK: return put(&p->impl_mask, buf, sizeInBytes);
        default: return CUBLAS_STATUS_INVALID_VALUE;
    }
}

// cuBLASLt guide, cublasLtMatmulAlgoGetHeuristic(): INVALID_VALUE if requestedAlgoCount <= 0 (and here for NULL
// arguments or descriptors); NOT_SUPPORTED when no algorithm fits the configuration (returnAlgoCount 0); else
// SUCCESS with heuristicResultsArray[0 .. returnAlgoCount) filled. The fake has one algorithm (see the top).
cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle,
                                                           cublasLtMatmulDesc_t operationDesc,
                                                           cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                                           cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                                           cublasLtMatmulPreference_t preference,
                                                           int requestedAlgoCount,
                                                           cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                                           int* returnAlgoCount) {
    if (!live_handle(lightHandle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount) return CUBLAS_STATUS_INVALID_VALUE;
    *returnAlgoCount = 0;
    const Pref* pref = as_pref(preference);
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    Problem p;
    const cublasStatus_t st = check_problem(operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    const Desc* d = as_desc(operationDesc);
    // Alignments the algorithm relies on: what the preference promises, at most 16 bytes (one vector load); an
    // operand promised less than one element's alignment has no algorithm at all.
    AlgoNeeds needs;
    const uint32_t elem[4] = {uint32_t(ty_size(p.ab)), uint32_t(ty_size(p.ab)), uint32_t(ty_size(p.cd)),
                              uint32_t(ty_size(p.cd))};
    for (int i = 0; i < 4; ++i) {
        if (pref->align[i] < elem[i]) return CUBLAS_STATUS_NOT_SUPPORTED;
        needs.align[i] = std::min<uint32_t>(pref->align[i], 16);
    }
    const uint32_t bias_align = std::min<uint32_t>(alignment_of(d->bias), 16);
    needs.align[4] = p.bias ? std::max<uint32_t>(uint32_t(ty_size(p.cd)), bias_align) : 1;
    needs.workspace = pref->max_workspace >= kFakeWorkspace ? kFakeWorkspace : 0;
    cublasLtMatmulHeuristicResult_t& r = heuristicResultsArray[0];
    std::memset(&r, 0, sizeof r);
    encode(needs, &r.algo);
    r.workspaceSize = size_t(needs.workspace);
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLASLt guide, cublasLtMatmul(): D = alpha * op(A) op(B) + beta * C, then the epilogue. In place (C == D) needs
// Cdesc == Ddesc; out of place, C and D have the same type, rows, columns, batch count and order, and C's leading
// dimension may differ (even be 0). algo NULL: an implicit heuristic query with the default preferences (no
// workspace). workspace: "must be 256B aligned"; "CUBLAS_STATUS_INVALID_VALUE ... when workspaceSizeInBytes is less
// than workspace required by configured algo".
cublasStatus_t CUBLASWINAPI cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
                                           const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc,
                                           const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                                           const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                                           cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo,
                                           void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream) {
    const char* call = "cublasLtMatmul";
    if (!live_handle(lightHandle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    Problem p;
    const cublasStatus_t st = check_problem(computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    const Desc* d = as_desc(computeDesc);
    if (C == D && !p.C->same_as(*p.D)) return CUBLAS_STATUS_INVALID_VALUE;  // in place: one layout (ld 0 too)
    AlgoNeeds needs;  // algo NULL: the implicit query's default preferences (no workspace, element alignment)
    if (algo && !decode(algo, &needs)) return CUBLAS_STATUS_INVALID_VALUE;
    if (workspaceSizeInBytes < needs.workspace) return CUBLAS_STATUS_INVALID_VALUE;
    if (workspaceSizeInBytes > 0 && (!workspace || reinterpret_cast<uintptr_t>(workspace) % 256 != 0))
        return CUBLAS_STATUS_INVALID_VALUE;
    const bool bias = p.bias;
    if (bias && !d->bias) return CUBLAS_STATUS_INVALID_VALUE;  // the BIAS epilogue reads the bias vector
    const size_t ab_size = ty_size(p.ab), cd_size = ty_size(p.cd);
    // Alignment: every operand at least to its element (else a misaligned access on a GPU), and as the algorithm
    // was promised (else the fake refuses, see the top).
    {
        const void* ptrs[5] = {A, B, C, D, d->bias};
        const size_t elems[5] = {ab_size, ab_size, cd_size, cd_size, cd_size};
        const char* names[5] = {"A", "B", "C", "D", "bias"};
        for (int i = 0; i < 5; ++i) {
            if (i == 4 && !bias) continue;
            const uintptr_t a = reinterpret_cast<uintptr_t>(ptrs[i]);
            if (a % elems[i] != 0) {
                sdxl_emu::report_device_error(716 /* cudaErrorMisalignedAddress */,
                                              std::string(call) + ": operand " + names[i] + " is not aligned to its " +
                                                  std::to_string(elems[i]) + "-byte elements");
                return CUBLAS_STATUS_EXECUTION_FAILED;
            }
            if (a % needs.align[i] != 0) return CUBLAS_STATUS_INVALID_VALUE;
        }
    }
    if (p.m == 0 || p.n == 0) return CUBLAS_STATUS_SUCCESS;  // nothing to compute or touch

    // Scalars: host pointers (CUBLASLT_POINTER_MODE_HOST, the default) or device pointers; scale type float, or
    // __half for CUBLAS_COMPUTE_16F.
    const size_t scalar_size = p.half_scalars ? 2 : 4;
    if (d->pointer_mode == CUBLASLT_POINTER_MODE_DEVICE && (!device_ok(call, "alpha", alpha, scalar_size, "scalar") ||
                                                            !device_ok(call, "beta", beta, scalar_size, "scalar")))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    const float a_s = sdxl_emu::read_scalar(alpha, p.half_scalars), b_s = sdxl_emu::read_scalar(beta, p.half_scalars);
    const bool read_c = b_s != 0.0f;  // beta == 0: C is not read (NaN in C does not propagate)

    // Device ranges over all batches.
    const int64_t m = p.m, n = p.n, k = p.k, batches = p.batch;
    const int64_t a_rows = int64_t(p.A->rows), a_cols = int64_t(p.A->cols);
    const int64_t b_rows = int64_t(p.B->rows), b_cols = int64_t(p.B->cols);
    int64_t lo;
    size_t bytes;
    if (k > 0) {
        operand_extent((a_cols - 1) * p.A->ld + a_rows, p.A->batch_stride, batches, ab_size, &lo, &bytes);
        if (!device_ok(call, "A", static_cast<const char*>(A) + lo * int64_t(ab_size), bytes,
                       extent("stored", a_rows, a_cols, p.A->ld, p.A->batch_stride, batches)))
            return CUBLAS_STATUS_EXECUTION_FAILED;
        operand_extent((b_cols - 1) * p.B->ld + b_rows, p.B->batch_stride, batches, ab_size, &lo, &bytes);
        if (!device_ok(call, "B", static_cast<const char*>(B) + lo * int64_t(ab_size), bytes,
                       extent("stored", b_rows, b_cols, p.B->ld, p.B->batch_stride, batches)))
            return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (read_c) {
        operand_extent((n - 1) * p.C->ld + m, p.C->batch_stride, batches, cd_size, &lo, &bytes);
        if (!device_ok(call, "C", static_cast<const char*>(C) + lo * int64_t(cd_size), bytes,
                       extent("", m, n, p.C->ld, p.C->batch_stride, batches)))
            return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    operand_extent((n - 1) * p.D->ld + m, p.D->batch_stride, batches, cd_size, &lo, &bytes);
    if (!device_ok(call, "D", static_cast<const char*>(D) + lo * int64_t(cd_size), bytes,
                   extent("", m, n, p.D->ld, p.D->batch_stride, batches)))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    if (bias) {
        operand_extent(m, d->bias_batch_stride, batches, cd_size, &lo, &bytes);
        if (!device_ok(call, "bias", static_cast<const char*>(d->bias) + lo * int64_t(cd_size), bytes, "vector"))
            return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (needs.workspace > 0 && !device_ok(call, "workspace", workspace, size_t(needs.workspace), "workspace"))
        return CUBLAS_STATUS_EXECUTION_FAILED;

    // The product runs now, or, while `stream` captures a graph, as a node with copies of everything it reads
    // from the descriptors (sdxl_emu::enqueue; the host scalars were read above, at the call, as cuBLASLt does).
    const int64_t a_ld = p.A->ld, a_bs = p.A->batch_stride, b_ld = p.B->ld, b_bs = p.B->batch_stride;
    const int64_t c_ld = p.C->ld, c_bs = p.C->batch_stride, d_ld = p.D->ld, d_bs = p.D->batch_stride;
    const void* bias_ptr = bias ? d->bias : nullptr;
    const int64_t bias_bs = d->bias_batch_stride;
    const auto ab = p.ab, cd = p.cd;
    const bool ta = p.ta, tb = p.tb;
    const auto rounding = p.rounding;
    const size_t ws_bytes = size_t(needs.workspace);
    auto run = [=]() -> cudaError_t {
        if (ws_bytes > 0) std::memset(workspace, 0xff, ws_bytes);  // scratch: NaN bytes, as fresh emulator memory
        std::vector<float> Af(k > 0 ? size_t(m) * size_t(k) : 0), Bf(k > 0 ? size_t(k) * size_t(n) : 0);
        std::vector<float> acc(size_t(m) * size_t(n)), out(size_t(m) * size_t(n));
        for (int64_t bi = 0; bi < batches; ++bi) {
            const void* a = static_cast<const char*>(A) + bi * a_bs * int64_t(ab_size);
            const void* b = static_cast<const char*>(B) + bi * b_bs * int64_t(ab_size);
            const void* c = static_cast<const char*>(C) + bi * c_bs * int64_t(cd_size);
            void* dd = static_cast<char*>(D) + bi * d_bs * int64_t(cd_size);
            const void* bv = bias_ptr ? static_cast<const char*>(bias_ptr) + bi * bias_bs * int64_t(cd_size) : nullptr;
            std::fill(acc.begin(), acc.end(), 0.0f);
            if (k > 0) {
                fill_panel(Af.data(), a, ab, ta, m, k, a_ld);
                round_inputs(Af.data(), Af.size(), rounding);
                fill_panel(Bf.data(), b, ab, tb, k, n, b_ld);
                round_inputs(Bf.data(), Bf.size(), rounding);
                gemm_accumulate(m, n, k, Af.data(), Bf.data(), acc.data());
            }
            // All of C is read before any of D is written: an out-of-place C that overlaps D still reads its inputs.
            for (int64_t j = 0; j < n; ++j)
                for (int64_t i = 0; i < m; ++i) {
                    float v = a_s * acc[size_t(j * m + i)];
                    if (read_c) v += b_s * load(c, j * c_ld + i, cd);
                    if (bv) v += load(bv, i, cd);
                    out[size_t(j * m + i)] = v;
                }
            for (int64_t j = 0; j < n; ++j)
                for (int64_t i = 0; i < m; ++i) store(dd, j * d_ld + i, cd, out[size_t(j * m + i)]);
        }
        return cudaSuccess;
    };
    try {
        if (sdxl_emu::enqueue(stream, call, std::move(run)) != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    } catch (const std::bad_alloc&) {
        return CUBLAS_STATUS_ALLOC_FAILED;  // the host memory behind the emulated device ran out
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
