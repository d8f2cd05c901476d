// Tests of the emulator's fake cuBLAS (libcublas.so.13), fake cuBLASLt (libcublasLt.so.13) and fake cuDNN
// (libcudnn.so.9), used exactly as the backend uses them: dlopen by path + dlsym (cuda_gemm.cpp, cuda_conv.cpp),
// device memory from cudaMalloc, copies with cudaMemcpy, errors through cudaGetLastError / cudaGetErrorString.
//
// The libraries are opened from the first folder of SDXL4J_CUDA_LIBS, else from SDXL_FAKE_LIBS_DIR (a compile-time
// path, set by CMake to <build>/emu/fakelibs). Results are compared with an independent reference written here (plain loops
// over logical indices, in double):
//   - F32 outputs: |got - ref| <= 1e-5 * (|alpha| * sum |a * b| + |beta * c|), i.e. 1e-5 relative to the magnitude
//     of the terms (the fake sums in fp32 in its own order);
//   - F16 / BF16 outputs: within half a unit in the last place of the output type at ref (one round-to-nearest of
//     the fp32 result), plus the fp32 term above.
// Padding between rows / batches is filled with NaN in inputs (so a wrong lda, stride or layout shows up as NaN)
// and with a sentinel in outputs, which must come back byte-identical.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <dlfcn.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/emulator/emu_runtime.h"
#include "check.h"
#include "core/half.h"

namespace {

// ---------------------------------------------------------------- loading

std::string libs_dir() {
    if (const char* e = std::getenv("SDXL4J_CUDA_LIBS")) {
        std::string s(e);
        s = s.substr(0, s.find(':'));
        if (!s.empty()) return s;
    }
#ifdef SDXL_FAKE_LIBS_DIR
    return SDXL_FAKE_LIBS_DIR;
#else
    return "";
#endif
}

void* open_lib(const char* soname) {
    static std::map<std::string, void*> opened;
    auto it = opened.find(soname);
    if (it != opened.end()) return it->second;
    const std::string dir = libs_dir();
    const std::string path = dir.empty() ? std::string(soname) : dir + "/" + soname;
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) std::cerr << "cannot open " << path << ": " << ::dlerror() << " (set SDXL4J_CUDA_LIBS)\n";
    opened[soname] = h;
    return h;
}

template <typename Fn>
void resolve(void* lib, Fn& fn, const char* name, bool& ok) {
    fn = lib ? reinterpret_cast<Fn>(::dlsym(lib, name)) : nullptr;
    if (!fn) {
        ok = false;
        std::cerr << "missing symbol " << name << "\n";
    }
}

// Declared by hand (as cuda_gemm.cpp does): cublas_api.h overloads some names in C++.
struct Blas {
    cublasStatus_t (*Create)(cublasHandle_t*);
    cublasStatus_t (*Destroy)(cublasHandle_t);
    cublasStatus_t (*SetStream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*GetStream)(cublasHandle_t, cudaStream_t*);
    cublasStatus_t (*SetMathMode)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*GetMathMode)(cublasHandle_t, cublasMath_t*);
    cublasStatus_t (*SetPointerMode)(cublasHandle_t, cublasPointerMode_t);
    cublasStatus_t (*GetVersion)(cublasHandle_t, int*);
    cublasStatus_t (*GetProperty)(libraryPropertyType, int*);
    const char* (*StatusName)(cublasStatus_t);
    const char* (*StatusString)(cublasStatus_t);
    cublasStatus_t (*GemmEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                             const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                             cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    cublasStatus_t (*GemmStridedBatchedEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                           const void*, const void*, cudaDataType, int, long long, const void*,
                                           cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                           long long, int, cublasComputeType_t, cublasGemmAlgo_t);
};

const Blas* blas() {
    static const Blas* b = [] {
        void* lib = open_lib("libcublas.so.13");
        auto* x = new Blas();
        bool ok = lib != nullptr;
        resolve(lib, x->Create, "cublasCreate_v2", ok);
        resolve(lib, x->Destroy, "cublasDestroy_v2", ok);
        resolve(lib, x->SetStream, "cublasSetStream_v2", ok);
        resolve(lib, x->GetStream, "cublasGetStream_v2", ok);
        resolve(lib, x->SetMathMode, "cublasSetMathMode", ok);
        resolve(lib, x->GetMathMode, "cublasGetMathMode", ok);
        resolve(lib, x->SetPointerMode, "cublasSetPointerMode_v2", ok);
        resolve(lib, x->GetVersion, "cublasGetVersion_v2", ok);
        resolve(lib, x->GetProperty, "cublasGetProperty", ok);
        resolve(lib, x->StatusName, "cublasGetStatusName", ok);
        resolve(lib, x->StatusString, "cublasGetStatusString", ok);
        resolve(lib, x->GemmEx, "cublasGemmEx", ok);
        resolve(lib, x->GemmStridedBatchedEx, "cublasGemmStridedBatchedEx", ok);
        return ok ? x : nullptr;
    }();
    CHECK_MSG(b != nullptr, "libcublas.so.13 (fake) could not be loaded from '" << libs_dir() << "'");
    return b;
}

struct Dnn {
    decltype(&::cudnnGetVersion) GetVersion;
    decltype(&::cudnnGetErrorString) GetErrorString;
    decltype(&::cudnnCreate) Create;
    decltype(&::cudnnDestroy) Destroy;
    decltype(&::cudnnSetStream) SetStream;
    decltype(&::cudnnGetStream) GetStream;
    decltype(&::cudnnCreateTensorDescriptor) CreateTensorDescriptor;
    decltype(&::cudnnSetTensor4dDescriptor) SetTensor4dDescriptor;
    decltype(&::cudnnSetTensor4dDescriptorEx) SetTensor4dDescriptorEx;
    decltype(&::cudnnGetTensor4dDescriptor) GetTensor4dDescriptor;
    decltype(&::cudnnDestroyTensorDescriptor) DestroyTensorDescriptor;
    decltype(&::cudnnCreateFilterDescriptor) CreateFilterDescriptor;
    decltype(&::cudnnSetFilter4dDescriptor) SetFilter4dDescriptor;
    decltype(&::cudnnDestroyFilterDescriptor) DestroyFilterDescriptor;
    decltype(&::cudnnCreateConvolutionDescriptor) CreateConvolutionDescriptor;
    decltype(&::cudnnSetConvolution2dDescriptor) SetConvolution2dDescriptor;
    decltype(&::cudnnSetConvolutionMathType) SetConvolutionMathType;
    decltype(&::cudnnSetConvolutionGroupCount) SetConvolutionGroupCount;
    decltype(&::cudnnDestroyConvolutionDescriptor) DestroyConvolutionDescriptor;
    decltype(&::cudnnGetConvolution2dForwardOutputDim) GetConvolution2dForwardOutputDim;
    decltype(&::cudnnGetConvolutionForwardAlgorithmMaxCount) GetConvolutionForwardAlgorithmMaxCount;
    decltype(&::cudnnGetConvolutionForwardAlgorithm_v7) GetConvolutionForwardAlgorithm_v7;
    decltype(&::cudnnGetConvolutionForwardWorkspaceSize) GetConvolutionForwardWorkspaceSize;
    decltype(&::cudnnConvolutionForward) ConvolutionForward;
    decltype(&::cudnnFindConvolutionForwardAlgorithmEx) FindConvolutionForwardAlgorithmEx;
};

const Dnn* dnn() {
    static const Dnn* d = [] {
        void* lib = open_lib("libcudnn.so.9");
        auto* x = new Dnn();
        bool ok = lib != nullptr;
        resolve(lib, x->GetVersion, "cudnnGetVersion", ok);
        resolve(lib, x->GetErrorString, "cudnnGetErrorString", ok);
        resolve(lib, x->Create, "cudnnCreate", ok);
        resolve(lib, x->Destroy, "cudnnDestroy", ok);
        resolve(lib, x->SetStream, "cudnnSetStream", ok);
        resolve(lib, x->GetStream, "cudnnGetStream", ok);
        resolve(lib, x->CreateTensorDescriptor, "cudnnCreateTensorDescriptor", ok);
        resolve(lib, x->SetTensor4dDescriptor, "cudnnSetTensor4dDescriptor", ok);
        resolve(lib, x->SetTensor4dDescriptorEx, "cudnnSetTensor4dDescriptorEx", ok);
        resolve(lib, x->GetTensor4dDescriptor, "cudnnGetTensor4dDescriptor", ok);
        resolve(lib, x->DestroyTensorDescriptor, "cudnnDestroyTensorDescriptor", ok);
        resolve(lib, x->CreateFilterDescriptor, "cudnnCreateFilterDescriptor", ok);
        resolve(lib, x->SetFilter4dDescriptor, "cudnnSetFilter4dDescriptor", ok);
        resolve(lib, x->DestroyFilterDescriptor, "cudnnDestroyFilterDescriptor", ok);
        resolve(lib, x->CreateConvolutionDescriptor, "cudnnCreateConvolutionDescriptor", ok);
        resolve(lib, x->SetConvolution2dDescriptor, "cudnnSetConvolution2dDescriptor", ok);
        resolve(lib, x->SetConvolutionMathType, "cudnnSetConvolutionMathType", ok);
        resolve(lib, x->SetConvolutionGroupCount, "cudnnSetConvolutionGroupCount", ok);
        resolve(lib, x->DestroyConvolutionDescriptor, "cudnnDestroyConvolutionDescriptor", ok);
        resolve(lib, x->GetConvolution2dForwardOutputDim, "cudnnGetConvolution2dForwardOutputDim", ok);
        resolve(lib, x->GetConvolutionForwardAlgorithmMaxCount, "cudnnGetConvolutionForwardAlgorithmMaxCount", ok);
        resolve(lib, x->GetConvolutionForwardAlgorithm_v7, "cudnnGetConvolutionForwardAlgorithm_v7", ok);
        resolve(lib, x->GetConvolutionForwardWorkspaceSize, "cudnnGetConvolutionForwardWorkspaceSize", ok);
        resolve(lib, x->ConvolutionForward, "cudnnConvolutionForward", ok);
        resolve(lib, x->FindConvolutionForwardAlgorithmEx, "cudnnFindConvolutionForwardAlgorithmEx", ok);
        return ok ? x : nullptr;
    }();
    CHECK_MSG(d != nullptr, "libcudnn.so.9 (fake) could not be loaded from '" << libs_dir() << "'");
    return d;
}

// ---------------------------------------------------------------- element storage

enum class DT { F32, F16, BF16 };

size_t dt_size(DT t) { return t == DT::F32 ? 4 : 2; }

DT dt_of(cudaDataType t) { return t == CUDA_R_32F ? DT::F32 : t == CUDA_R_16F ? DT::F16 : DT::BF16; }
DT dt_of(cudnnDataType_t t) {
    return t == CUDNN_DATA_FLOAT ? DT::F32 : t == CUDNN_DATA_HALF ? DT::F16 : DT::BF16;
}

// Host image of a device buffer of `count` elements of type t.
struct Store {
    DT t;
    std::vector<uint8_t> bytes;
    Store(DT type, size_t count) : t(type), bytes(count * dt_size(type)) {}
    size_t count() const { return bytes.size() / dt_size(t); }
    float get(size_t i) const {
        if (t == DT::F32) {
            float f;
            std::memcpy(&f, &bytes[i * 4], 4);
            return f;
        }
        uint16_t h;
        std::memcpy(&h, &bytes[i * 2], 2);
        return t == DT::F16 ? sdxl::f16_to_f32(h) : sdxl::bf16_to_f32(h);
    }
    void set(size_t i, float v) {  // rounds to the type
        if (t == DT::F32) {
            std::memcpy(&bytes[i * 4], &v, 4);
            return;
        }
        const uint16_t h = t == DT::F16 ? sdxl::f32_to_f16(v) : sdxl::f32_to_bf16(v);
        std::memcpy(&bytes[i * 2], &h, 2);
    }
    bool same_at(const Store& o, size_t i) const {
        const size_t s = dt_size(t);
        return std::memcmp(&bytes[i * s], &o.bytes[i * s], s) == 0;
    }
};

// A device allocation (cudaMalloc), freed on scope exit.
struct DevBuf {
    void* p = nullptr;
    size_t bytes = 0;
    explicit DevBuf(size_t n) : bytes(n) {
        const cudaError_t e = cudaMalloc(&p, n);
        CHECK_MSG(e == cudaSuccess && p, "cudaMalloc(" << n << ") failed: " << int(e));
    }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    ~DevBuf() {
        if (p) (void)cudaFree(p);
    }
    void release() {
        (void)cudaFree(p);
        p = nullptr;
    }
    void up(const Store& s) { CHECK(cudaMemcpy(p, s.bytes.data(), s.bytes.size(), cudaMemcpyHostToDevice) == cudaSuccess); }
    void up(const void* src, size_t n) { CHECK(cudaMemcpy(p, src, n, cudaMemcpyHostToDevice) == cudaSuccess); }
    void down(Store& s) const {
        const cudaError_t e_ = cudaMemcpy(s.bytes.data(), p, s.bytes.size(), cudaMemcpyDeviceToHost);
        CHECK_MSG(e_ == cudaSuccess, cudaGetErrorString(e_));
    }
};

std::mt19937& rng() {
    static std::mt19937 r(20240531u);
    return r;
}
float rnd() { return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng()); }

// Unit in the last place of the output type at |x| (normal range; the tests stay well inside it).
double ulp_of(DT t, double x) {
    if (t == DT::F32) return 0.0;
    const int mant = t == DT::F16 ? 10 : 7;
    const double ax = std::fabs(x);
    const double min_normal = t == DT::F16 ? std::ldexp(1.0, -14) : std::ldexp(1.0, -126);
    if (ax < min_normal) return std::ldexp(1.0, (t == DT::F16 ? -14 : -126) - mant);
    int e;
    std::frexp(ax, &e);  // ax = m * 2^e, m in [0.5, 1)
    return std::ldexp(1.0, e - 1 - mant);
}

// One output rounding: half an ulp of the output type at the fp32 result (taken at |ref| nudged up, so that a
// result just across a power of two is judged with the larger ulp), plus the fp32 summation term.
bool near_ref(DT out, double got, double ref, double scale) {
    const double tol = 1e-5 * scale + 0.5 * ulp_of(out, std::fabs(ref) * (1 + 1e-5) + 1e-5 * scale) + 1e-30;
    return std::fabs(got - ref) <= tol;  // false for NaN
}

// Independent rounding of the reference inputs for the _FAST compute types: TF32 = 10 explicit mantissa bits,
// to nearest (ties away); F16 / BF16 through core/half.h.
double tf32(float v) {
    if (!std::isfinite(v) || v == 0.0f) return v;
    int e;
    const double m = std::frexp(double(v), &e);  // [0.5, 1): 11 significant bits = 1 + 10
    return std::ldexp(std::round(std::ldexp(m, 11)), e - 11);
}

// The error a fake library reported (cudaGetLastError and its cudaGetErrorString text), then clears it: the
// emulator makes such errors sticky, as a broken context is on a GPU, until sdxl_emu::reset_device().
std::string take_device_error(cudaError_t* code) {
    *code = cudaGetLastError();
    const char* s = cudaGetErrorString(*code);
    std::string text = s ? s : "";
    sdxl_emu::reset_device();
    return text;
}

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// ---------------------------------------------------------------- cuBLAS

struct BlasHandle {
    cublasHandle_t h = nullptr;
    BlasHandle() {
        if (blas()) CHECK(blas()->Create(&h) == CUBLAS_STATUS_SUCCESS);
    }
    ~BlasHandle() {
        if (h) (void)blas()->Destroy(h);
    }
};

enum class Round { None, TF32, F16, BF16 };

struct GemmCase {
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
    int m = 1, n = 1, k = 1;
    int lda_pad = 0, ldb_pad = 0, ldc_pad = 0;  // leading dimension = minimum + pad
    float alpha = 1.0f, beta = 0.0f;
    cudaDataType ab = CUDA_R_32F, c = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    int batch = 1;                            // > 1 or strided: cublasGemmStridedBatchedEx
    bool strided = false;
    long long sA_extra = 0, sB_extra = 0, sC_extra = 0;  // stride = matrix size + extra; -1 => stride 0
    bool nan_c = false;                       // C holds NaN (with beta == 0 it must not propagate)
    Round round = Round::None;                // input rounding the reference applies
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

// Runs one GEMM through the fake and checks every output element and every untouched byte.
void run_gemm(const GemmCase& g) {
    const Blas* b = blas();
    if (!b) return;
    BlasHandle h;
    CHECK(b->SetMathMode(h.h, g.math) == CUBLAS_STATUS_SUCCESS);
    const bool ta = g.ta != CUBLAS_OP_N, tb = g.tb != CUBLAS_OP_N;
    const int a_rows = ta ? g.k : g.m, a_cols = ta ? g.m : g.k;  // stored A
    const int b_rows = tb ? g.n : g.k, b_cols = tb ? g.k : g.n;
    const int lda = std::max(1, a_rows) + g.lda_pad, ldb = std::max(1, b_rows) + g.ldb_pad,
              ldc = std::max(1, g.m) + g.ldc_pad;
    auto stride = [&](long long extra, long long size) { return extra < 0 ? 0LL : size + extra; };
    const long long sA = stride(g.sA_extra, (long long)lda * a_cols), sB = stride(g.sB_extra, (long long)ldb * b_cols),
                    sC = stride(g.sC_extra, (long long)ldc * g.n);
    const DT tab = dt_of(g.ab), tc = dt_of(g.c);
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    Store A(tab, size_t((g.batch - 1) * sA + (long long)lda * a_cols));
    Store B(tab, size_t((g.batch - 1) * sB + (long long)ldb * b_cols));
    Store C(tc, size_t((g.batch - 1) * sC + (long long)ldc * g.n));
    for (size_t i = 0; i < A.count(); ++i) A.set(i, qnan);
    for (size_t i = 0; i < B.count(); ++i) B.set(i, qnan);
    for (size_t i = 0; i < C.count(); ++i) C.set(i, 777.0f);  // sentinel
    std::vector<char> c_used(C.count(), 0);
    for (int bi = 0; bi < g.batch; ++bi) {
        for (int cc = 0; cc < a_cols; ++cc)
            for (int r = 0; r < a_rows; ++r) A.set(size_t(bi * sA + (long long)cc * lda + r), rnd());
        for (int cc = 0; cc < b_cols; ++cc)
            for (int r = 0; r < b_rows; ++r) B.set(size_t(bi * sB + (long long)cc * ldb + r), rnd());
        for (int j = 0; j < g.n; ++j)
            for (int i = 0; i < g.m; ++i) {
                const size_t at = size_t(bi * sC + (long long)j * ldc + i);
                C.set(at, g.nan_c ? qnan : rnd());
                c_used[at] = 1;
            }
    }
    const Store C0 = C;
    DevBuf dA(A.bytes.size()), dB(B.bytes.size()), dC(C.bytes.size());
    dA.up(A);
    dB.up(B);
    dC.up(C);
    const bool half_scalars = g.compute == CUBLAS_COMPUTE_16F || g.compute == CUBLAS_COMPUTE_16F_PEDANTIC;
    uint16_t ha = sdxl::f32_to_f16(g.alpha), hb = sdxl::f32_to_f16(g.beta);
    const void* alpha = half_scalars ? static_cast<const void*>(&ha) : &g.alpha;
    const void* beta = half_scalars ? static_cast<const void*>(&hb) : &g.beta;
    cublasStatus_t st;
    if (g.strided || g.batch > 1)
        st = b->GemmStridedBatchedEx(h.h, g.ta, g.tb, g.m, g.n, g.k, alpha, dA.p, g.ab, lda, sA, dB.p, g.ab, ldb, sB,
                                     beta, dC.p, g.c, ldc, sC, g.batch, g.compute, CUBLAS_GEMM_DEFAULT);
    else
        st = b->GemmEx(h.h, g.ta, g.tb, g.m, g.n, g.k, alpha, dA.p, g.ab, lda, dB.p, g.ab, ldb, beta, dC.p, g.c, ldc,
                       g.compute, CUBLAS_GEMM_DEFAULT);
    CHECK_MSG(st == CUBLAS_STATUS_SUCCESS, "status " << int(st));
    dC.down(C);

    auto rounded = [&](float v) -> double {
        switch (g.round) {
            case Round::None: return v;
            case Round::TF32: return tf32(v);
            case Round::F16: return sdxl::f16_to_f32(sdxl::f32_to_f16(v));
            case Round::BF16: return sdxl::bf16_to_f32(sdxl::f32_to_bf16(v));
        }
        return v;
    };
    const double alpha_d = half_scalars ? sdxl::f16_to_f32(ha) : g.alpha;
    const double beta_d = half_scalars ? sdxl::f16_to_f32(hb) : g.beta;
    int bad = 0;
    for (int bi = 0; bi < g.batch; ++bi) {
        // Row-major reference R[i][j] of this batch from the logical op(A), op(B).
        auto opA = [&](int i, int p) { return rounded(A.get(size_t(bi * sA + (ta ? (long long)i * lda + p : (long long)p * lda + i)))); };
        auto opB = [&](int p, int j) { return rounded(B.get(size_t(bi * sB + (tb ? (long long)p * ldb + j : (long long)j * ldb + p)))); };
        for (int i = 0; i < g.m; ++i)
            for (int j = 0; j < g.n; ++j) {
                double sum = 0, mag = 0;
                for (int p = 0; p < g.k; ++p) {
                    sum += opA(i, p) * opB(p, j);
                    mag += std::fabs(opA(i, p) * opB(p, j));
                }
                const size_t at = size_t(bi * sC + (long long)j * ldc + i);
                const double c0 = beta_d != 0.0 ? C0.get(at) : 0.0;
                const double ref = alpha_d * sum + beta_d * c0;
                const double got = C.get(at);
                if (!near_ref(tc, got, ref, std::fabs(alpha_d) * mag + std::fabs(beta_d * c0)) && bad++ < 5)
                    CHECK_MSG(false, "batch " << bi << " C(" << i << "," << j << ") = " << got << ", expected " << ref);
            }
    }
    CHECK_MSG(bad == 0, bad << " wrong elements");
    int touched = 0;
    for (size_t i = 0; i < C.count(); ++i)
        if (!c_used[i] && !C.same_at(C0, i)) ++touched;
    CHECK_MSG(touched == 0, touched << " elements outside C's m x n (padding / batch gaps) were written");
}

SDXL_TEST(fake_cublas_version_and_names) {
    const Blas* b = blas();
    if (!b) return;
    int v = 0;
    CHECK(b->GetVersion(nullptr, &v) == CUBLAS_STATUS_SUCCESS);
    CHECK_MSG(v / 10000 == CUBLAS_VER_MAJOR, "version " << v);
    int major = -1, minor = -1, patch = -1;
    CHECK(b->GetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS);
    CHECK(b->GetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS);
    CHECK(b->GetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS);
    CHECK(major == 13 && major * 10000 + minor * 100 + patch == v);
    CHECK(b->GetProperty(MAJOR_VERSION, nullptr) == CUBLAS_STATUS_INVALID_VALUE);
#define NAME_IS(s) CHECK(std::string(b->StatusName(s)) == #s && std::strlen(b->StatusString(s)) > 0)
    NAME_IS(CUBLAS_STATUS_SUCCESS);
    NAME_IS(CUBLAS_STATUS_NOT_INITIALIZED);
    NAME_IS(CUBLAS_STATUS_ALLOC_FAILED);
    NAME_IS(CUBLAS_STATUS_INVALID_VALUE);
    NAME_IS(CUBLAS_STATUS_ARCH_MISMATCH);
    NAME_IS(CUBLAS_STATUS_MAPPING_ERROR);
    NAME_IS(CUBLAS_STATUS_EXECUTION_FAILED);
    NAME_IS(CUBLAS_STATUS_INTERNAL_ERROR);
    NAME_IS(CUBLAS_STATUS_NOT_SUPPORTED);
    NAME_IS(CUBLAS_STATUS_LICENSE_ERROR);
#undef NAME_IS
}

SDXL_TEST(fake_cublas_handle_stream_math_mode) {
    const Blas* b = blas();
    if (!b) return;
    CHECK(b->Create(nullptr) == CUBLAS_STATUS_INVALID_VALUE);
    cublasHandle_t h = nullptr;
    CHECK(b->Create(&h) == CUBLAS_STATUS_SUCCESS && h);
    cudaStream_t s = reinterpret_cast<cudaStream_t>(uintptr_t(0x1234)), got = nullptr;
    CHECK(b->SetStream(h, s) == CUBLAS_STATUS_SUCCESS);
    CHECK(b->GetStream(h, &got) == CUBLAS_STATUS_SUCCESS && got == s);
    CHECK(b->SetStream(h, nullptr) == CUBLAS_STATUS_SUCCESS);
    const auto mode = cublasMath_t(int(CUBLAS_DEFAULT_MATH) | int(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    CHECK(b->SetMathMode(h, mode) == CUBLAS_STATUS_SUCCESS);
    cublasMath_t m = CUBLAS_PEDANTIC_MATH;
    CHECK(b->GetMathMode(h, &m) == CUBLAS_STATUS_SUCCESS && m == mode);
    CHECK(b->SetMathMode(h, cublasMath_t(5)) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(b->SetMathMode(h, cublasMath_t(32)) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(b->SetPointerMode(h, cublasPointerMode_t(2)) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(b->Destroy(h) == CUBLAS_STATUS_SUCCESS);
    // A null or destroyed handle: NOT_INITIALIZED.
    CHECK(b->SetStream(nullptr, nullptr) == CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK(b->Destroy(h) == CUBLAS_STATUS_NOT_INITIALIZED);
    float one = 1.0f;
    CHECK(b->GemmEx(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, nullptr, CUDA_R_32F, 1, nullptr, CUDA_R_32F, 1,
                    &one, nullptr, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) ==
          CUBLAS_STATUS_NOT_INITIALIZED);
}

SDXL_TEST(fake_cublas_gemm_f32_all_ops_padded_ld) {
    const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
    for (auto ta : ops)
        for (auto tb : ops) {
            GemmCase g;
            g.ta = ta, g.tb = tb, g.m = 7, g.n = 5, g.k = 9;
            g.lda_pad = 3, g.ldb_pad = 2, g.ldc_pad = 4;  // lda != rows: NaN padding catches a wrong lda
            g.alpha = 1.5f, g.beta = -0.5f;
            run_gemm(g);
        }
    GemmCase big;  // larger than the fake's cache blocks in every dimension
    big.ta = CUBLAS_OP_T, big.m = 300, big.n = 40, big.k = 150, big.lda_pad = 1, big.ldc_pad = 2;
    run_gemm(big);
}

SDXL_TEST(fake_cublas_gemm_alpha_beta_and_nan_c) {
    GemmCase g;
    g.m = 6, g.n = 4, g.k = 3, g.ldc_pad = 1, g.alpha = -2.0f, g.beta = 0.25f;
    run_gemm(g);
    g.beta = 0.0f, g.nan_c = true;  // beta == 0: C is not read, its NaN must not reach the result
    run_gemm(g);
    g.ab = g.c = CUDA_R_16F, g.compute = CUBLAS_COMPUTE_16F;
    run_gemm(g);
}

SDXL_TEST(fake_cublas_gemm_k0_m0_n0_batch0) {
    const Blas* b = blas();
    if (!b) return;
    BlasHandle h;
    const int m = 3, n = 2, ldc = 4;
    Store C(DT::F32, ldc * n);
    for (size_t i = 0; i < C.count(); ++i) C.set(i, float(i) + 1.0f);
    DevBuf dC(C.bytes.size());
    dC.up(C);
    const float alpha = 3.0f, two = 2.0f, zero = 0.0f;
    // k == 0: C = beta * C; A and B are not touched (null here).
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 0, &alpha, nullptr, CUDA_R_32F, m, nullptr, CUDA_R_32F, 1,
                    &two, dC.p, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    Store got(DT::F32, C.count());
    dC.down(got);
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < ldc; ++i) {
            const size_t at = size_t(j * ldc + i);
            CHECK(got.get(at) == (i < m ? 2.0f * C.get(at) : C.get(at)));
        }
    Store nan(DT::F32, C.count());
    for (size_t i = 0; i < nan.count(); ++i) nan.set(i, std::numeric_limits<float>::quiet_NaN());
    dC.up(nan);
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 0, &alpha, nullptr, CUDA_R_32F, m, nullptr, CUDA_R_32F, 1,
                    &zero, dC.p, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    dC.down(got);
    CHECK(got.get(0) == 0.0f && got.get(size_t(ldc + m - 1)) == 0.0f && std::isnan(got.get(size_t(m))));
    // m == 0, n == 0, batchCount == 0: success and nothing touched (all pointers null).
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, 0, n, 4, &alpha, nullptr, CUDA_R_32F, 1, nullptr, CUDA_R_32F, 4,
                    &two, nullptr, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, 0, 4, &alpha, nullptr, CUDA_R_32F, m, nullptr, CUDA_R_32F, 4,
                    &two, nullptr, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    CHECK(b->GemmStridedBatchedEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 4, &alpha, nullptr, CUDA_R_32F, m, 0, nullptr,
                                  CUDA_R_32F, 4, 0, &two, nullptr, CUDA_R_32F, m, 0, 0, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
}

SDXL_TEST(fake_cublas_gemm_invalid_values) {
    const Blas* b = blas();
    if (!b) return;
    BlasHandle h;
    const int m = 4, n = 3, k = 2;
    Store C(DT::F32, size_t(m * n));
    for (size_t i = 0; i < C.count(); ++i) C.set(i, 5.0f);
    DevBuf dA(m * k * 4), dB(k * n * 4), dC(C.bytes.size());
    dC.up(C);
    const float one = 1.0f;
    const auto N = CUBLAS_OP_N, T = CUBLAS_OP_T;
    auto gemm = [&](cublasOperation_t ta, cublasOperation_t tb, int mm, int nn, int kk, int lda, int ldb, int ldc,
                    const float* alpha = nullptr) {
        return b->GemmEx(h.h, ta, tb, mm, nn, kk, alpha ? alpha : &one, dA.p, CUDA_R_32F, lda, dB.p, CUDA_R_32F, ldb,
                         &one, dC.p, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    const auto INVALID = CUBLAS_STATUS_INVALID_VALUE;
    CHECK(gemm(N, N, m, n, k, m, k, m) == CUBLAS_STATUS_SUCCESS);  // the valid baseline
    CHECK(gemm(N, N, -1, n, k, m, k, m) == INVALID);               // m < 0
    CHECK(gemm(N, N, m, -1, k, m, k, m) == INVALID);               // n < 0
    CHECK(gemm(N, N, m, n, -1, m, k, m) == INVALID);               // k < 0
    CHECK(gemm(N, N, m, n, k, m - 1, k, m) == INVALID);            // transa N: lda < max(1, m)
    CHECK(gemm(T, N, m, n, k, k - 1, k, m) == INVALID);            // transa T: lda < max(1, k)
    CHECK(gemm(T, N, m, n, k, k, k, m) == CUBLAS_STATUS_SUCCESS);  //   (lda = k is enough for T)
    CHECK(gemm(N, N, m, n, k, m, k - 1, m) == INVALID);            // transb N: ldb < max(1, k)
    CHECK(gemm(N, T, m, n, k, m, n - 1, m) == INVALID);            // transb T: ldb < max(1, n)
    CHECK(gemm(N, N, m, n, k, m, k, m - 1) == INVALID);            // ldc < max(1, m)
    CHECK(gemm(N, N, 0, n, k, 0, k, 1) == INVALID);                // m == 0 still needs lda >= 1
    CHECK(gemm(N, N, 0, n, k, 1, k, 0) == INVALID);                // ... and ldc >= 1
    CHECK(gemm(cublasOperation_t(CUBLAS_OP_CONJG), N, m, n, k, m, k, m) == INVALID);  // transa not N/T/C
    CHECK(gemm(N, cublasOperation_t(7), m, n, k, m, k, m) == INVALID);                // transb not N/T/C
    CHECK(b->GemmEx(h.h, N, N, m, n, k, nullptr, dA.p, CUDA_R_32F, m, dB.p, CUDA_R_32F, k, &one, dC.p, CUDA_R_32F, m,
                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == INVALID);  // alpha NULL
    CHECK(b->GemmStridedBatchedEx(h.h, N, N, m, n, k, &one, dA.p, CUDA_R_32F, m, 0, dB.p, CUDA_R_32F, k, 0, &one,
                                  dC.p, CUDA_R_32F, m, 0, -1, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT) == INVALID);  // batchCount < 0
    // None of the rejected calls wrote C (only the two valid ones did; rerun the baseline from a known C).
    dC.up(C);
    CHECK(gemm(N, N, m, n, k, m - 1, k, m) == INVALID);
    Store after(DT::F32, C.count());
    dC.down(after);
    CHECK(std::memcmp(after.bytes.data(), C.bytes.data(), C.bytes.size()) == 0);
}

SDXL_TEST(fake_cublas_gemm_not_supported) {
    const Blas* b = blas();
    if (!b) return;
    BlasHandle h;
    DevBuf dA(64), dB(64), dC(64);
    const float one = 1.0f;
    auto gemm = [&](cudaDataType a, cudaDataType bt, cudaDataType c, cublasComputeType_t ct,
                    cublasGemmAlgo_t algo = CUBLAS_GEMM_DEFAULT) {
        return b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, dA.p, a, 2, dB.p, bt, 2, &one, dC.p, c, 2, ct,
                         algo);
    };
    const auto NS = CUBLAS_STATUS_NOT_SUPPORTED;
    CHECK(gemm(CUDA_R_32F, CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F) == NS);             // A/B types differ
    CHECK(gemm(CUDA_R_16F, CUDA_R_16F, CUDA_R_16BF, CUBLAS_COMPUTE_32F) == NS);            // 16F -> 16BF
    CHECK(gemm(CUDA_R_32F, CUDA_R_32F, CUDA_R_16F, CUBLAS_COMPUTE_32F) == NS);             // 32F -> 16F
    CHECK(gemm(CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_16F) == NS);             // 32F data, 16F compute
    CHECK(gemm(CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_16F) == NS);          // 16BF data, 16F compute
    CHECK(gemm(CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F_FAST_TF32) == NS);   // FAST_* needs 32F data
    CHECK(gemm(CUDA_R_64F, CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F) == NS);             // not emulated
    CHECK(gemm(CUDA_R_8I, CUDA_R_8I, CUDA_R_32I, CUBLAS_COMPUTE_32I) == NS);               // not emulated
    CHECK(gemm(CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, cublasGemmAlgo_t(50)) == NS);  // algo
    CHECK(gemm(CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_ALGO5) == CUBLAS_STATUS_SUCCESS);
}

SDXL_TEST(fake_cublas_gemm_half_and_bfloat16) {
    GemmCase g;
    g.ta = CUBLAS_OP_N, g.tb = CUBLAS_OP_T, g.m = 9, g.n = 6, g.k = 13, g.lda_pad = 2, g.ldb_pad = 1, g.ldc_pad = 3;
    g.alpha = 0.75f, g.beta = 1.5f;
    g.ab = g.c = CUDA_R_16F, g.compute = CUBLAS_COMPUTE_32F;  // float scalars
    run_gemm(g);
    g.compute = CUBLAS_COMPUTE_16F;  // __half scalars
    run_gemm(g);
    g.compute = CUBLAS_COMPUTE_32F;
    g.ab = g.c = CUDA_R_16BF;
    run_gemm(g);
    g.ab = CUDA_R_16F, g.c = CUDA_R_32F;  // mixed: 16F inputs, 32F output
    run_gemm(g);
    g.ab = CUDA_R_16BF, g.c = CUDA_R_32F;
    run_gemm(g);
}

SDXL_TEST(fake_cublas_gemm_fast_compute_types_round_inputs) {
    // Exact: (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 -> fp32 1 + 2^-11; with TF32 (10-bit mantissa) or BF16 inputs the
    // 2^-12 is rounded away -> 1; with F16 inputs (10 bits too) likewise.
    const Blas* b = blas();
    if (!b) return;
    BlasHandle h;
    const float x = 1.0f + std::ldexp(1.0f, -12), one = 1.0f, zero = 0.0f;
    DevBuf dA(4), dB(4), dC(4);
    dA.up(&x, 4);
    dB.up(&x, 4);
    auto run = [&](cublasComputeType_t ct) {
        float out = -1.0f;
        CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, dA.p, CUDA_R_32F, 1, dB.p, CUDA_R_32F, 1, &zero,
                        dC.p, CUDA_R_32F, 1, ct, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
        CHECK(cudaMemcpy(&out, dC.p, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        return out;
    };
    CHECK(run(CUBLAS_COMPUTE_32F) == 1.0f + std::ldexp(1.0f, -11));
    CHECK(run(CUBLAS_COMPUTE_32F_PEDANTIC) == 1.0f + std::ldexp(1.0f, -11));
    CHECK(run(CUBLAS_COMPUTE_32F_FAST_TF32) == 1.0f);
    CHECK(run(CUBLAS_COMPUTE_32F_FAST_16F) == 1.0f);
    CHECK(run(CUBLAS_COMPUTE_32F_FAST_16BF) == 1.0f);
    // CUBLAS_TF32_TENSOR_OP_MATH lets CUBLAS_COMPUTE_32F use TF32; the _PEDANTIC compute type never does.
    CHECK(b->SetMathMode(h.h, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS);
    CHECK(run(CUBLAS_COMPUTE_32F) == 1.0f);
    CHECK(run(CUBLAS_COMPUTE_32F_PEDANTIC) == 1.0f + std::ldexp(1.0f, -11));
    // Random data against a reference on rounded inputs.
    GemmCase g;
    g.ta = CUBLAS_OP_T, g.m = 11, g.n = 7, g.k = 17, g.lda_pad = 1, g.alpha = 1.25f, g.beta = 0.5f;
    g.compute = CUBLAS_COMPUTE_32F_FAST_TF32, g.round = Round::TF32;
    run_gemm(g);
    g.compute = CUBLAS_COMPUTE_32F_FAST_16F, g.round = Round::F16;
    run_gemm(g);
    g.compute = CUBLAS_COMPUTE_32F_FAST_16BF, g.round = Round::BF16;
    run_gemm(g);
}

SDXL_TEST(fake_cublas_gemm_strided_batched_and_broadcast) {
    GemmCase g;
    g.ta = CUBLAS_OP_T, g.tb = CUBLAS_OP_N, g.m = 5, g.n = 4, g.k = 6, g.lda_pad = 1, g.ldb_pad = 2, g.ldc_pad = 1;
    g.alpha = 1.0f, g.beta = 0.5f, g.batch = 3;
    g.sA_extra = -1, g.sB_extra = 5, g.sC_extra = 3;  // A broadcast (stride 0); gaps between B and C batches
    run_gemm(g);
    g.sA_extra = 2, g.sB_extra = -1;  // B broadcast
    g.ab = g.c = CUDA_R_16F;
    run_gemm(g);
    g.batch = 1, g.strided = true, g.sB_extra = 0;  // a strided call with one batch
    run_gemm(g);
}

SDXL_TEST(fake_cublas_gemm_device_pointer_mode) {
    const Blas* b = blas();
    if (!b) return;
    BlasHandle h;
    CHECK(b->SetPointerMode(h.h, CUBLAS_POINTER_MODE_DEVICE) == CUBLAS_STATUS_SUCCESS);
    const float a[2] = {2.0f, 3.0f}, bv[2] = {5.0f, 7.0f}, scal[2] = {0.5f, 0.0f};
    DevBuf dA(8), dB(8), dC(4), dS(8);
    dA.up(a, 8);
    dB.up(bv, 8);
    dS.up(scal, 8);
    // 1x1 = (1x2)(2x1): 2*5 + 3*7 = 31; times alpha 0.5 -> 15.5
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, dS.p, dA.p, CUDA_R_32F, 1, dB.p, CUDA_R_32F, 2,
                    static_cast<char*>(dS.p) + 4, dC.p, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    float out = 0;
    CHECK(cudaMemcpy(&out, dC.p, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(out == 15.5f);
}

SDXL_TEST(fake_cublas_gemm_bad_device_pointers) {
    const Blas* b = blas();
    if (!b) return;
    BlasHandle h;
    (void)cudaGetLastError();
    const int m = 4, n = 3, k = 5;
    const float one = 1.0f;
    DevBuf dA(m * k * 4), dB(k * n * 4), dC(m * n * 4), dCshort(m * n * 4 - 4);
    Store C(DT::F32, size_t(m * n));
    for (size_t i = 0; i < C.count(); ++i) C.set(i, 9.0f);
    dC.up(C);
    std::vector<float> host(size_t(m * k), 1.0f);
    cudaError_t code;
    // A host pointer where A belongs.
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, host.data(), CUDA_R_32F, m, dB.p, CUDA_R_32F, k,
                    &one, dC.p, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) ==
          CUBLAS_STATUS_EXECUTION_FAILED);
    std::string msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress, "code " << int(code));
    CHECK_MSG(contains(msg, "cublasGemmEx") && contains(msg, "operand A"), msg);
    Store after(DT::F32, C.count());
    dC.down(after);
    CHECK(std::memcmp(after.bytes.data(), C.bytes.data(), C.bytes.size()) == 0);  // nothing written
    // C one element too short for m x n.
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA.p, CUDA_R_32F, m, dB.p, CUDA_R_32F, k, &one,
                    dCshort.p, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) ==
          CUBLAS_STATUS_EXECUTION_FAILED);
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "operand C"), msg);
    // lda larger than the allocation allows: A's last column runs past the end.
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA.p, CUDA_R_32F, m + 1, dB.p, CUDA_R_32F, k, &one,
                    dC.p, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_EXECUTION_FAILED);
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "operand A"), msg);
    // Strided batch: B holds two of the three batches.
    DevBuf dB2(size_t(2 * k * n * 4)), dC3(size_t(3 * m * n * 4));
    CHECK(b->GemmStridedBatchedEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA.p, CUDA_R_32F, m, 0, dB2.p,
                                  CUDA_R_32F, k, k * n, &one, dC3.p, CUDA_R_32F, m, m * n, 3, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_EXECUTION_FAILED);
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "cublasGemmStridedBatchedEx") &&
                  contains(msg, "operand B"),
              msg);
    // A freed block.
    DevBuf dFreed(m * k * 4);
    void* stale = dFreed.p;
    dFreed.release();
    CHECK(b->GemmEx(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, stale, CUDA_R_32F, m, dB.p, CUDA_R_32F, k, &one,
                    dC.p, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_EXECUTION_FAILED);
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "operand A"), msg);
    CHECK(cudaGetLastError() == cudaSuccess);
}

// ---------------------------------------------------------------- cuBLASLt

struct LtLib {
    decltype(&::cublasLtCreate) Create;
    decltype(&::cublasLtDestroy) Destroy;
    decltype(&::cublasLtGetVersion) GetVersion;
    decltype(&::cublasLtGetProperty) GetProperty;
    decltype(&::cublasLtGetStatusName) StatusName;
    decltype(&::cublasLtMatmulDescCreate) DescCreate;
    decltype(&::cublasLtMatmulDescDestroy) DescDestroy;
    decltype(&::cublasLtMatmulDescSetAttribute) DescSet;
    decltype(&::cublasLtMatrixLayoutCreate) LayoutCreate;
    decltype(&::cublasLtMatrixLayoutDestroy) LayoutDestroy;
    decltype(&::cublasLtMatrixLayoutSetAttribute) LayoutSet;
    decltype(&::cublasLtMatmulPreferenceCreate) PrefCreate;
    decltype(&::cublasLtMatmulPreferenceDestroy) PrefDestroy;
    decltype(&::cublasLtMatmulPreferenceSetAttribute) PrefSet;
    decltype(&::cublasLtMatmulAlgoGetHeuristic) Heuristic;
    decltype(&::cublasLtMatmul) Matmul;
};

const LtLib* lt() {
    static const LtLib* l = [] {
        void* lib = open_lib("libcublasLt.so.13");
        auto* x = new LtLib();
        bool ok = lib != nullptr;
        resolve(lib, x->Create, "cublasLtCreate", ok);
        resolve(lib, x->Destroy, "cublasLtDestroy", ok);
        resolve(lib, x->GetVersion, "cublasLtGetVersion", ok);
        resolve(lib, x->GetProperty, "cublasLtGetProperty", ok);
        resolve(lib, x->StatusName, "cublasLtGetStatusName", ok);
        resolve(lib, x->DescCreate, "cublasLtMatmulDescCreate", ok);
        resolve(lib, x->DescDestroy, "cublasLtMatmulDescDestroy", ok);
        resolve(lib, x->DescSet, "cublasLtMatmulDescSetAttribute", ok);
        resolve(lib, x->LayoutCreate, "cublasLtMatrixLayoutCreate", ok);
        resolve(lib, x->LayoutDestroy, "cublasLtMatrixLayoutDestroy", ok);
        resolve(lib, x->LayoutSet, "cublasLtMatrixLayoutSetAttribute", ok);
        resolve(lib, x->PrefCreate, "cublasLtMatmulPreferenceCreate", ok);
        resolve(lib, x->PrefDestroy, "cublasLtMatmulPreferenceDestroy", ok);
        resolve(lib, x->PrefSet, "cublasLtMatmulPreferenceSetAttribute", ok);
        resolve(lib, x->Heuristic, "cublasLtMatmulAlgoGetHeuristic", ok);
        resolve(lib, x->Matmul, "cublasLtMatmul", ok);
        return ok ? x : nullptr;
    }();
    CHECK_MSG(l != nullptr, "libcublasLt.so.13 (fake) could not be loaded from '" << libs_dir() << "'");
    return l;
}

// One cublasLtMatmul problem, set up as the backend does it (descriptors, a preference, the heuristic's algorithm),
// with every descriptor destroyed at scope exit.
struct LtCase {
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
    int m = 1, n = 1, k = 1;
    int lda_pad = 0, ldb_pad = 0, ldc_pad = 0, ldd_pad = 0;
    float alpha = 1.0f, beta = 0.0f;
    cudaDataType ab = CUDA_R_32F, cd = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    bool bias = false;
    bool in_place = false;  // C == D
    int batch = 1;
    Round round = Round::None;
    uint64_t workspace = 0;  // the preference's maximum (and what is passed)
};

struct LtObjects {
    const LtLib* l;
    cublasLtHandle_t h = nullptr;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    explicit LtObjects(const LtLib* lib) : l(lib) { CHECK(l->Create(&h) == CUBLAS_STATUS_SUCCESS); }
    ~LtObjects() {
        for (cublasLtMatrixLayout_t x : {a, b, c, d})
            if (x) CHECK(l->LayoutDestroy(x) == CUBLAS_STATUS_SUCCESS);
        if (desc) CHECK(l->DescDestroy(desc) == CUBLAS_STATUS_SUCCESS);
        if (pref) CHECK(l->PrefDestroy(pref) == CUBLAS_STATUS_SUCCESS);
        if (h) CHECK(l->Destroy(h) == CUBLAS_STATUS_SUCCESS);
    }
    template <typename V>
    cublasStatus_t set(cublasLtMatmulDescAttributes_t attr, V v) {
        return l->DescSet(desc, attr, &v, sizeof v);
    }
};

void set_batch(const LtLib* l, cublasLtMatrixLayout_t layout, int batch, int64_t stride) {
    if (batch == 1) return;
    CHECK(l->LayoutSet(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutSet(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride) ==
          CUBLAS_STATUS_SUCCESS);
}

// Runs one matmul through the fake and checks every element of D against a double reference of
// alpha * op(A) op(B) + beta * C + bias, and that D's padding and C (out of place) are untouched.
void run_lt(const LtCase& g) {
    const LtLib* l = lt();
    if (!l) return;
    LtObjects o(l);
    const bool ta = g.ta != CUBLAS_OP_N, tb = g.tb != CUBLAS_OP_N;
    const int a_rows = ta ? g.k : g.m, a_cols = ta ? g.m : g.k, b_rows = tb ? g.n : g.k, b_cols = tb ? g.k : g.n;
    const int lda = std::max(1, a_rows) + g.lda_pad, ldb = std::max(1, b_rows) + g.ldb_pad;
    const int ldd = std::max(1, g.m) + g.ldd_pad, ldc = g.in_place ? ldd : std::max(1, g.m) + g.ldc_pad;
    const long long sA = (long long)lda * a_cols + 3, sB = (long long)ldb * b_cols + 1;
    const long long sC = (long long)ldc * g.n + 2, sD = g.in_place ? sC : (long long)ldd * g.n + 5;
    const DT tab = dt_of(g.ab), tcd = dt_of(g.cd);
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    Store A(tab, size_t((g.batch - 1) * sA + (long long)lda * a_cols));
    Store B(tab, size_t((g.batch - 1) * sB + (long long)ldb * b_cols));
    Store C(tcd, size_t((g.batch - 1) * sC + (long long)ldc * g.n));
    Store D(tcd, size_t((g.batch - 1) * sD + (long long)ldd * g.n));
    Store bias(tcd, size_t(std::max(1, g.m)));
    for (size_t i = 0; i < A.count(); ++i) A.set(i, qnan);
    for (size_t i = 0; i < B.count(); ++i) B.set(i, qnan);
    for (size_t i = 0; i < C.count(); ++i) C.set(i, 555.0f);
    for (size_t i = 0; i < D.count(); ++i) D.set(i, 777.0f);  // sentinel
    for (size_t i = 0; i < bias.count(); ++i) bias.set(i, rnd());
    std::vector<char> d_used(D.count(), 0);
    for (int bi = 0; bi < g.batch; ++bi) {
        for (int cc = 0; cc < a_cols; ++cc)
            for (int r = 0; r < a_rows; ++r) A.set(size_t(bi * sA + (long long)cc * lda + r), rnd());
        for (int cc = 0; cc < b_cols; ++cc)
            for (int r = 0; r < b_rows; ++r) B.set(size_t(bi * sB + (long long)cc * ldb + r), rnd());
        for (int j = 0; j < g.n; ++j)
            for (int i = 0; i < g.m; ++i) {
                C.set(size_t(bi * sC + (long long)j * ldc + i), rnd());
                d_used[size_t(bi * sD + (long long)j * ldd + i)] = 1;
            }
    }
    if (g.in_place) D = C;
    const Store C0 = C, D0 = D;
    DevBuf dA(A.bytes.size()), dB(B.bytes.size()), dC(C.bytes.size()), dD(D.bytes.size()), dBias(bias.bytes.size());
    DevBuf dW(std::max<size_t>(1, size_t(g.workspace)));
    dA.up(A);
    dB.up(B);
    dC.up(C);
    dD.up(D);
    dBias.up(bias);
    void* dptr = g.in_place ? dC.p : dD.p;

    CHECK(l->DescCreate(&o.desc, g.compute, g.compute == CUBLAS_COMPUTE_16F ? CUDA_R_16F : CUDA_R_32F) ==
          CUBLAS_STATUS_SUCCESS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_TRANSA, int32_t(g.ta)) == CUBLAS_STATUS_SUCCESS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_TRANSB, int32_t(g.tb)) == CUBLAS_STATUS_SUCCESS);
    if (g.bias) {
        CHECK(o.set(CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t(CUBLASLT_EPILOGUE_BIAS)) == CUBLAS_STATUS_SUCCESS);
        CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(g.cd)) == CUBLAS_STATUS_SUCCESS);
        CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(dBias.p)) == CUBLAS_STATUS_SUCCESS);
    }
    CHECK(l->LayoutCreate(&o.a, g.ab, uint64_t(a_rows), uint64_t(a_cols), lda) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&o.b, g.ab, uint64_t(b_rows), uint64_t(b_cols), ldb) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&o.c, g.cd, uint64_t(g.m), uint64_t(g.n), ldc) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&o.d, g.cd, uint64_t(g.m), uint64_t(g.n), ldd) == CUBLAS_STATUS_SUCCESS);
    set_batch(l, o.a, g.batch, sA);
    set_batch(l, o.b, g.batch, sB);
    set_batch(l, o.c, g.batch, sC);
    set_batch(l, o.d, g.batch, sD);
    CHECK(l->PrefCreate(&o.pref) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->PrefSet(o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g.workspace, sizeof g.workspace) ==
          CUBLAS_STATUS_SUCCESS);
    const uint32_t elem_ab = uint32_t(dt_size(tab)), elem_cd = uint32_t(dt_size(tcd));
    CHECK(l->PrefSet(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &elem_ab, 4) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->PrefSet(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &elem_ab, 4) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->PrefSet(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &elem_cd, 4) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->PrefSet(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &elem_cd, 4) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    CHECK(l->Heuristic(o.h, o.desc, o.a, o.b, o.c, o.d, o.pref, 1, &res, &found) == CUBLAS_STATUS_SUCCESS);
    CHECK(found == 1 && res.state == CUBLAS_STATUS_SUCCESS && res.workspaceSize <= g.workspace);
    const bool half_scalars = g.compute == CUBLAS_COMPUTE_16F;
    uint16_t ha = sdxl::f32_to_f16(g.alpha), hb = sdxl::f32_to_f16(g.beta);
    const void* alpha = half_scalars ? static_cast<const void*>(&ha) : &g.alpha;
    const void* beta = half_scalars ? static_cast<const void*>(&hb) : &g.beta;
    const cublasStatus_t st = l->Matmul(o.h, o.desc, alpha, dA.p, o.a, dB.p, o.b, beta, dC.p, o.c, dptr,
                                        g.in_place ? o.c : o.d, &res.algo, dW.p, size_t(g.workspace), nullptr);
    CHECK_MSG(st == CUBLAS_STATUS_SUCCESS, "status " << int(st));
    if (g.in_place) dC.down(D);
    else dD.down(D);
    if (res.workspaceSize > 0) {  // the fake used its workspace as scratch
        std::vector<uint8_t> ws(res.workspaceSize);
        CHECK(cudaMemcpy(ws.data(), dW.p, ws.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK(std::all_of(ws.begin(), ws.end(), [](uint8_t v) { return v == 0xff; }));
    }

    auto rounded = [&](float v) -> double {
        return g.round == Round::TF32 ? tf32(v) : double(v);
    };
    const double alpha_d = half_scalars ? sdxl::f16_to_f32(ha) : g.alpha;
    const double beta_d = half_scalars ? sdxl::f16_to_f32(hb) : g.beta;
    int bad = 0;
    for (int bi = 0; bi < g.batch; ++bi) {
        auto opA = [&](int i, int p) {
            return rounded(A.get(size_t(bi * sA + (ta ? (long long)i * lda + p : (long long)p * lda + i))));
        };
        auto opB = [&](int p, int j) {
            return rounded(B.get(size_t(bi * sB + (tb ? (long long)p * ldb + j : (long long)j * ldb + p))));
        };
        for (int i = 0; i < g.m; ++i)
            for (int j = 0; j < g.n; ++j) {
                double sum = 0, mag = 0;
                for (int p = 0; p < g.k; ++p) {
                    sum += opA(i, p) * opB(p, j);
                    mag += std::fabs(opA(i, p) * opB(p, j));
                }
                const double c0 = beta_d != 0.0 ? C0.get(size_t(bi * sC + (long long)j * ldc + i)) : 0.0;
                const double bv = g.bias ? bias.get(size_t(i)) : 0.0;
                const double ref = alpha_d * sum + beta_d * c0 + bv;
                const double got = D.get(size_t(bi * sD + (long long)j * ldd + i));
                if (!near_ref(tcd, got, ref, std::fabs(alpha_d) * mag + std::fabs(beta_d * c0) + std::fabs(bv)) &&
                    bad++ < 5)
                    CHECK_MSG(false, "batch " << bi << " D(" << i << "," << j << ") = " << got << ", expected " << ref);
            }
    }
    CHECK_MSG(bad == 0, bad << " wrong elements");
    int touched = 0;
    for (size_t i = 0; i < D.count(); ++i)
        if (!d_used[i] && !D.same_at(D0, i)) ++touched;
    CHECK_MSG(touched == 0, touched << " elements outside D's m x n (padding / batch gaps) were written");
    if (!g.in_place) {
        Store c_after(tcd, C.count());
        dC.down(c_after);
        CHECK_MSG(std::memcmp(c_after.bytes.data(), C0.bytes.data(), C0.bytes.size()) == 0, "C was written");
    }
}

SDXL_TEST(fake_cublaslt_version_handles_and_attributes) {
    const LtLib* l = lt();
    if (!l) return;
    CHECK(l->GetVersion() / 10000 == size_t(CUBLAS_VER_MAJOR));
    int major = -1;
    CHECK(l->GetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS && major == CUBLAS_VER_MAJOR);
    CHECK(std::string(l->StatusName(CUBLAS_STATUS_NOT_SUPPORTED)) == "CUBLAS_STATUS_NOT_SUPPORTED");
    CHECK(l->Create(nullptr) == CUBLAS_STATUS_INVALID_VALUE);
    cublasLtHandle_t h = nullptr;
    CHECK(l->Create(&h) == CUBLAS_STATUS_SUCCESS && h);
    CHECK(l->Destroy(h) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->Destroy(h) == CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK(l->DescCreate(nullptr, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_INVALID_VALUE);
    cublasLtMatmulDesc_t d = nullptr;
    CHECK(l->DescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    const int32_t t = CUBLAS_OP_T;
    const int64_t wide = 1;
    const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    const void* ptr = nullptr;
    CHECK(l->DescSet(d, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->DescSet(d, CUBLASLT_MATMUL_DESC_TRANSA, &wide, sizeof wide) == CUBLAS_STATUS_INVALID_VALUE);  // size
    CHECK(l->DescSet(d, CUBLASLT_MATMUL_DESC_TRANSA, nullptr, sizeof t) == CUBLAS_STATUS_INVALID_VALUE);   // NULL
    CHECK(l->DescSet(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->DescSet(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ptr, sizeof ptr) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->DescSet(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &t, sizeof t) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(l->DescSet(d, cublasLtMatmulDescAttributes_t(9), &t, sizeof t) == CUBLAS_STATUS_INVALID_VALUE);  // no such
    CHECK(l->DescSet(d, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ptr, sizeof ptr) == CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(l->DescSet(nullptr, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(l->DescDestroy(d) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->DescDestroy(d) == CUBLAS_STATUS_INVALID_VALUE);  // destroyed already
    cublasLtMatrixLayout_t lay = nullptr;
    CHECK(l->LayoutCreate(nullptr, CUDA_R_32F, 2, 2, 2) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(l->LayoutCreate(&lay, CUDA_R_32F, 2, 2, 2) == CUBLAS_STATUS_SUCCESS);
    const int32_t zero = 0, two = 2;
    CHECK(l->LayoutSet(lay, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &zero, 4) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(l->LayoutSet(lay, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &two, 4) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutSet(lay, CUBLASLT_MATRIX_LAYOUT_LD, &two, 4) == CUBLAS_STATUS_INVALID_VALUE);  // int64_t
    CHECK(l->LayoutSet(lay, cublasLtMatrixLayoutAttribute_t(99), &two, 4) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(l->LayoutDestroy(lay) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulPreference_t pref = nullptr;
    CHECK(l->PrefCreate(&pref) == CUBLAS_STATUS_SUCCESS);
    const uint64_t ws = 1 << 20;
    CHECK(l->PrefSet(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->PrefSet(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &two, 4) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(l->PrefSet(pref, cublasLtMatmulPreferenceAttributes_t(42), &two, 4) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(l->PrefDestroy(pref) == CUBLAS_STATUS_SUCCESS);
}

SDXL_TEST(fake_cublaslt_matmul_bias_and_residual) {
    // The backend's form: D^T = W X^T (A op N or T, B op N or T), bias epilogue, C = residual out of place.
    const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T};
    for (auto ta : ops)
        for (auto tb : ops) {
            LtCase g;
            g.ta = ta, g.tb = tb, g.m = 11, g.n = 6, g.k = 13;
            g.lda_pad = 2, g.ldb_pad = 1, g.ldc_pad = 3, g.ldd_pad = 1;
            g.beta = 1.0f, g.bias = true;
            run_lt(g);
        }
    LtCase g;
    g.ta = CUBLAS_OP_T, g.m = 7, g.n = 5, g.k = 9, g.alpha = 1.5f, g.beta = -0.5f, g.bias = true;
    for (cudaDataType t : {CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF}) {
        g.ab = g.cd = t;
        run_lt(g);
    }
    g.ab = CUDA_R_16F, g.cd = CUDA_R_32F;  // mixed: 16F inputs, 32F output and bias
    run_lt(g);
    g.ab = g.cd = CUDA_R_16F, g.compute = CUBLAS_COMPUTE_16F;  // __half scalars
    run_lt(g);
    LtCase nb;  // no bias, beta 0 (C not read), in place
    nb.m = 4, nb.n = 3, nb.k = 5, nb.in_place = true;
    run_lt(nb);
    nb.beta = 1.0f, nb.bias = true;  // in place with C == D: D = A B + D + bias
    run_lt(nb);
    LtCase big;  // larger than the fake's cache blocks; a workspace the algorithm asks for and uses
    big.ta = CUBLAS_OP_T, big.m = 300, big.n = 40, big.k = 150, big.beta = 1.0f, big.bias = true;
    big.workspace = uint64_t(32) << 20;
    run_lt(big);
    LtCase bt;  // strided batches, the bias shared (batch stride 0)
    bt.ta = CUBLAS_OP_T, bt.m = 5, bt.n = 4, bt.k = 6, bt.lda_pad = 1, bt.beta = 0.5f, bt.bias = true, bt.batch = 3;
    run_lt(bt);
    LtCase tf;  // CUBLAS_COMPUTE_32F_FAST_TF32 rounds the inputs to TF32
    tf.m = 6, tf.n = 5, tf.k = 17, tf.beta = 1.0f, tf.bias = true, tf.compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    tf.round = Round::TF32;
    run_lt(tf);
}

SDXL_TEST(fake_cublaslt_status_rules) {
    const LtLib* l = lt();
    if (!l) return;
    (void)cudaGetLastError();
    const int m = 4, n = 3, k = 5;
    DevBuf dA(m * k * 4), dB(k * n * 4), dC(m * n * 4), dD(m * n * 4), dBias(m * 4), dW(size_t(2) << 20);
    Store C(DT::F32, size_t(m * n));
    for (size_t i = 0; i < C.count(); ++i) C.set(i, 9.0f);
    dC.up(C);
    dD.up(C);
    LtObjects o(l);
    CHECK(l->DescCreate(&o.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t(CUBLASLT_EPILOGUE_BIAS)) == CUBLAS_STATUS_SUCCESS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(dBias.p)) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&o.a, CUDA_R_32F, m, k, m) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&o.b, CUDA_R_32F, k, n, k) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&o.c, CUDA_R_32F, m, n, m) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&o.d, CUDA_R_32F, m, n, m) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->PrefCreate(&o.pref) == CUBLAS_STATUS_SUCCESS);
    const uint64_t ws = uint64_t(2) << 20;
    CHECK(l->PrefSet(o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const auto INVALID = CUBLAS_STATUS_INVALID_VALUE, NS = CUBLAS_STATUS_NOT_SUPPORTED;
    auto heuristic = [&](cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                         cublasLtMatrixLayout_t d, int count = 1) {
        return l->Heuristic(o.h, o.desc, a, b, c, d, o.pref, count, &res, &found);
    };
    CHECK(heuristic(o.a, o.b, o.c, o.d) == CUBLAS_STATUS_SUCCESS && found == 1);
    CHECK(res.workspaceSize > 0);  // the fake asks for 1 MiB when it may
    const cublasLtMatmulAlgo_t algo = res.algo;
    const float one = 1.0f;
    auto matmul_alpha = [&](const void* a, const void* b, const void* c, cublasLtMatrixLayout_t cdesc, void* d,
                            cublasLtMatrixLayout_t ddesc, void* w, size_t wsize, const float* alpha) {
        return l->Matmul(o.h, o.desc, alpha, a, o.a, b, o.b, &one, c, cdesc, d, ddesc, &algo, w, wsize, nullptr);
    };
    auto matmul = [&](const void* a, const void* b, const void* c, cublasLtMatrixLayout_t cdesc, void* d,
                      cublasLtMatrixLayout_t ddesc, void* w, size_t wsize) {
        return matmul_alpha(a, b, c, cdesc, d, ddesc, w, wsize, &one);
    };
    CHECK(matmul(dA.p, dB.p, dC.p, o.c, dD.p, o.d, dW.p, ws) == CUBLAS_STATUS_SUCCESS);  // the valid baseline
    CHECK(heuristic(o.a, o.b, o.c, o.d, 0) == INVALID);                                   // requestedAlgoCount <= 0
    CHECK(l->Heuristic(nullptr, o.desc, o.a, o.b, o.c, o.d, o.pref, 1, &res, &found) ==
          CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK(l->Matmul(nullptr, o.desc, &one, dA.p, o.a, dB.p, o.b, &one, dC.p, o.c, dD.p, o.d, &algo, dW.p, ws,
                    nullptr) == CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK(matmul_alpha(dA.p, dB.p, dC.p, o.c, dD.p, o.d, dW.p, ws, nullptr) == INVALID);  // alpha NULL
    CHECK(matmul(dA.p, dB.p, dC.p, o.c, dD.p, o.d, dW.p, res.workspaceSize - 1) == INVALID);  // too small
    CHECK(matmul(dA.p, dB.p, dC.p, o.c, dD.p, o.d, static_cast<char*>(dW.p) + 128, ws / 2) == INVALID);  // aligned?
    CHECK(matmul(dA.p, dB.p, dC.p, o.c, dD.p, nullptr, dW.p, ws) == INVALID);           // Ddesc NULL
    // C == D needs Cdesc == Ddesc: a C layout with another ld is refused in place, accepted out of place.
    cublasLtMatrixLayout_t c_wide = nullptr, bad = nullptr;
    DevBuf dCwide(size_t((m + 2) * n * 4));
    CHECK(l->LayoutCreate(&c_wide, CUDA_R_32F, m, n, m + 2) == CUBLAS_STATUS_SUCCESS);
    CHECK(matmul(dA.p, dB.p, dD.p, c_wide, dD.p, o.d, dW.p, ws) == INVALID);
    CHECK(matmul(dA.p, dB.p, dCwide.p, c_wide, dD.p, o.d, dW.p, ws) == CUBLAS_STATUS_SUCCESS);
    // Dimensions that do not agree, ld below the rows: INVALID_VALUE from the heuristic and the matmul.
    CHECK(l->LayoutCreate(&bad, CUDA_R_32F, m, k + 1, m) == CUBLAS_STATUS_SUCCESS);  // A with K + 1 columns
    CHECK(heuristic(bad, o.b, o.c, o.d) == INVALID);
    CHECK(l->Matmul(o.h, o.desc, &one, dA.p, bad, dB.p, o.b, &one, dC.p, o.c, dD.p, o.d, &algo, dW.p, ws, nullptr) ==
          INVALID);
    CHECK(l->LayoutDestroy(bad) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->LayoutCreate(&bad, CUDA_R_32F, m, n, m - 1) == CUBLAS_STATUS_SUCCESS);  // D with ld < rows
    CHECK(heuristic(o.a, o.b, o.c, bad) == INVALID);
    CHECK(l->LayoutDestroy(bad) == CUBLAS_STATUS_SUCCESS);
    // Types outside the table; a bias type that is not D's; an order or epilogue the fake does not run.
    CHECK(l->LayoutCreate(&bad, CUDA_R_16F, m, n, m) == CUBLAS_STATUS_SUCCESS);  // 32F inputs -> 16F output
    CHECK(heuristic(o.a, o.b, bad, bad) == NS);
    CHECK(l->LayoutDestroy(bad) == CUBLAS_STATUS_SUCCESS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(CUDA_R_16F)) == CUBLAS_STATUS_SUCCESS);
    CHECK(heuristic(o.a, o.b, o.c, o.d) == NS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(CUDA_R_32F)) == CUBLAS_STATUS_SUCCESS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t(CUBLASLT_EPILOGUE_GELU_BIAS)) == CUBLAS_STATUS_SUCCESS);
    CHECK(heuristic(o.a, o.b, o.c, o.d) == NS);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t(CUBLASLT_EPILOGUE_BIAS)) == CUBLAS_STATUS_SUCCESS);
    const int32_t row = CUBLASLT_ORDER_ROW;
    CHECK(l->LayoutSet(c_wide, CUBLASLT_MATRIX_LAYOUT_ORDER, &row, sizeof row) == CUBLAS_STATUS_SUCCESS);
    CHECK(heuristic(o.a, o.b, c_wide, o.d) == NS);
    CHECK(l->LayoutDestroy(c_wide) == CUBLAS_STATUS_SUCCESS);
    // The bias epilogue without a bias pointer.
    CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(nullptr)) == CUBLAS_STATUS_SUCCESS);
    CHECK(matmul(dA.p, dB.p, dC.p, o.c, dD.p, o.d, dW.p, ws) == INVALID);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(dBias.p)) == CUBLAS_STATUS_SUCCESS);
    // An operand less aligned than the preference promised (default: 256 bytes): refused by the algorithm.
    CHECK(matmul(static_cast<char*>(dA.p) + 4, dB.p, dC.p, o.c, dD.p, o.d, dW.p, ws) == INVALID);
    // A pointer off its element: a misaligned access.
    cudaError_t code;
    CHECK(l->Matmul(o.h, o.desc, &one, static_cast<char*>(dA.p) + 2, o.a, dB.p, o.b, &one, dC.p, o.c, dD.p, o.d,
                    nullptr, nullptr, 0, nullptr) == CUBLAS_STATUS_EXECUTION_FAILED);
    std::string msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorMisalignedAddress && contains(msg, "operand A"), msg);
    // Host memory where the bias belongs (algo NULL: the implicit heuristic); C one element too short.
    std::vector<float> host(size_t(m), 1.0f);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(host.data())) == CUBLAS_STATUS_SUCCESS);
    CHECK(l->Matmul(o.h, o.desc, &one, dA.p, o.a, dB.p, o.b, &one, dC.p, o.c, dD.p, o.d, nullptr, nullptr, 0,
                    nullptr) == CUBLAS_STATUS_EXECUTION_FAILED);
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "cublasLtMatmul") && contains(msg, "operand bias"),
              msg);
    CHECK(o.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(dBias.p)) == CUBLAS_STATUS_SUCCESS);
    DevBuf dCshort(size_t(m * n * 4 - 4));
    CHECK(l->Matmul(o.h, o.desc, &one, dA.p, o.a, dB.p, o.b, &one, dCshort.p, o.c, dD.p, o.d, nullptr, nullptr, 0,
                    nullptr) == CUBLAS_STATUS_EXECUTION_FAILED);
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "operand C"), msg);
    // None of the refused calls wrote C.
    Store after(DT::F32, C.count());
    dC.down(after);
    CHECK(std::memcmp(after.bytes.data(), C.bytes.data(), C.bytes.size()) == 0);
}

// ---------------------------------------------------------------- cuDNN

struct DnnHandle {
    cudnnHandle_t h = nullptr;
    DnnHandle() {
        if (dnn()) CHECK(dnn()->Create(&h) == CUDNN_STATUS_SUCCESS);
    }
    ~DnnHandle() {
        if (h) (void)dnn()->Destroy(h);
    }
};

struct Descs {
    const Dnn* d;
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    explicit Descs(const Dnn* dd) : d(dd) {
        CHECK(d->CreateTensorDescriptor(&x) == CUDNN_STATUS_SUCCESS);
        CHECK(d->CreateTensorDescriptor(&y) == CUDNN_STATUS_SUCCESS);
        CHECK(d->CreateFilterDescriptor(&w) == CUDNN_STATUS_SUCCESS);
        CHECK(d->CreateConvolutionDescriptor(&conv) == CUDNN_STATUS_SUCCESS);
    }
    ~Descs() {
        d->DestroyConvolutionDescriptor(conv);
        d->DestroyFilterDescriptor(w);
        d->DestroyTensorDescriptor(y);
        d->DestroyTensorDescriptor(x);
    }
};

// Logical 4-d layout with element strides.
struct Layout {
    int n, c, h, w;
    long long ns, cs, hs, ws;
    long long at(int a, int b, int cc, int d) const { return a * ns + b * cs + cc * hs + d * ws; }
    size_t span() const { return size_t((n - 1) * ns + (c - 1) * cs + (h - 1) * hs + (w - 1) * ws + 1); }
};

Layout packed(cudnnTensorFormat_t f, int n, int c, int h, int w) {
    if (f == CUDNN_TENSOR_NCHW) return {n, c, h, w, (long long)c * h * w, (long long)h * w, w, 1};
    return {n, c, h, w, (long long)h * w * c, 1, (long long)w * c, c};
}

Layout padded(int n, int c, int h, int w) {  // NCHW with gaps after every row, plane and image
    const long long hs = w + 2, cs = hs * h + 1, ns = cs * c + 3;
    return {n, c, h, w, ns, cs, hs, 1};
}

struct ConvCase {
    int N = 1, C = 1, H = 1, W = 1, K = 1, R = 1, S = 1;
    int ph = 0, pw = 0, u = 1, v = 1, dh = 1, dw = 1, G = 1;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnTensorFormat_t xfmt = CUDNN_TENSOR_NCHW, wfmt = CUDNN_TENSOR_NCHW;
    bool explicit_strides = false;  // x and y through cudnnSetTensor4dDescriptorEx with padded strides
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    float alpha = 1.0f, beta = 0.0f;
    bool nan_y = false;
    cudnnMathType_t math = CUDNN_FMA_MATH;  // FLOAT without TF32, as the backend runs it
};

int out_size(int in, int pad, int filt, int dil, int stride) { return (in + 2 * pad - ((filt - 1) * dil + 1)) / stride + 1; }

// Runs one convolution with every algorithm the fake reports as runnable and checks all outputs and padding.
void run_conv(const ConvCase& t) {
    const Dnn* d = dnn();
    if (!d) return;
    DnnHandle h;
    Descs ds(d);
    const int Ho = out_size(t.H, t.ph, t.R, t.dh, t.u), Wo = out_size(t.W, t.pw, t.S, t.dw, t.v);
    const int Cg = t.C / t.G, Kg = t.K / t.G;
    const Layout xl = t.explicit_strides ? padded(t.N, t.C, t.H, t.W) : packed(t.xfmt, t.N, t.C, t.H, t.W);
    const Layout yl = t.explicit_strides ? padded(t.N, t.K, Ho, Wo) : packed(t.xfmt, t.N, t.K, Ho, Wo);
    if (t.explicit_strides) {
        CHECK(d->SetTensor4dDescriptorEx(ds.x, t.type, t.N, t.C, t.H, t.W, int(xl.ns), int(xl.cs), int(xl.hs),
                                         int(xl.ws)) == CUDNN_STATUS_SUCCESS);
        CHECK(d->SetTensor4dDescriptorEx(ds.y, t.type, t.N, t.K, Ho, Wo, int(yl.ns), int(yl.cs), int(yl.hs),
                                         int(yl.ws)) == CUDNN_STATUS_SUCCESS);
    } else {
        CHECK(d->SetTensor4dDescriptor(ds.x, t.xfmt, t.type, t.N, t.C, t.H, t.W) == CUDNN_STATUS_SUCCESS);
        CHECK(d->SetTensor4dDescriptor(ds.y, t.xfmt, t.type, t.N, t.K, Ho, Wo) == CUDNN_STATUS_SUCCESS);
    }
    CHECK(d->SetFilter4dDescriptor(ds.w, t.type, t.wfmt, t.K, Cg, t.R, t.S) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetConvolution2dDescriptor(ds.conv, t.ph, t.pw, t.u, t.v, t.dh, t.dw, t.mode, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(d->SetConvolutionGroupCount(ds.conv, t.G) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetConvolutionMathType(ds.conv, t.math) == CUDNN_STATUS_SUCCESS);
    int on = 0, oc = 0, oh = 0, ow = 0;
    CHECK(d->GetConvolution2dForwardOutputDim(ds.conv, ds.x, ds.w, &on, &oc, &oh, &ow) == CUDNN_STATUS_SUCCESS);
    CHECK_MSG(on == t.N && oc == t.K && oh == Ho && ow == Wo, "output dim " << on << "x" << oc << "x" << oh << "x" << ow);

    const DT dt = dt_of(t.type);
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    Store X(dt, xl.span()), Wt(dt, size_t(t.K) * Cg * t.R * t.S), Y(dt, yl.span());
    for (size_t i = 0; i < X.count(); ++i) X.set(i, qnan);
    for (size_t i = 0; i < Y.count(); ++i) Y.set(i, 777.0f);
    for (int n = 0; n < t.N; ++n)
        for (int c = 0; c < t.C; ++c)
            for (int y = 0; y < t.H; ++y)
                for (int x = 0; x < t.W; ++x) X.set(size_t(xl.at(n, c, y, x)), rnd());
    auto w_at = [&](int k, int c, int r, int s) -> size_t {  // KCRS or KRSC
        return t.wfmt == CUDNN_TENSOR_NCHW ? size_t(((k * Cg + c) * t.R + r) * t.S + s)
                                           : size_t(((k * t.R + r) * t.S + s) * Cg + c);
    };
    for (size_t i = 0; i < Wt.count(); ++i) Wt.set(i, rnd());
    std::vector<char> y_used(Y.count(), 0);
    for (int n = 0; n < t.N; ++n)
        for (int k = 0; k < t.K; ++k)
            for (int y = 0; y < Ho; ++y)
                for (int x = 0; x < Wo; ++x) {
                    const size_t at = size_t(yl.at(n, k, y, x));
                    Y.set(at, t.nan_y ? qnan : rnd());
                    y_used[at] = 1;
                }
    const Store Y0 = Y;
    DevBuf dX(X.bytes.size()), dW(Wt.bytes.size()), dY(Y.bytes.size());
    dX.up(X);
    dW.up(Wt);

    // Reference, in double, over logical indices.
    std::vector<double> ref(size_t(t.N) * t.K * Ho * Wo), mag(ref.size());
    for (int n = 0; n < t.N; ++n)
        for (int k = 0; k < t.K; ++k) {
            const int g = k / Kg;
            for (int y = 0; y < Ho; ++y)
                for (int x = 0; x < Wo; ++x) {
                    double s = 0, a = 0;
                    for (int c = 0; c < Cg; ++c)
                        for (int r = 0; r < t.R; ++r)
                            for (int q = 0; q < t.S; ++q) {
                                const int iy = y * t.u - t.ph + r * t.dh, ix = x * t.v - t.pw + q * t.dw;
                                if (iy < 0 || iy >= t.H || ix < 0 || ix >= t.W) continue;
                                const int fr = t.mode == CUDNN_CONVOLUTION ? t.R - 1 - r : r;
                                const int fq = t.mode == CUDNN_CONVOLUTION ? t.S - 1 - q : q;
                                const double p = double(X.get(size_t(xl.at(n, g * Cg + c, iy, ix)))) *
                                                 Wt.get(w_at(k, c, fr, fq));
                                s += p;
                                a += std::fabs(p);
                            }
                    const size_t i = ((size_t(n) * t.K + k) * Ho + y) * Wo + x;
                    const double y0 = t.beta != 0.0f ? Y0.get(size_t(yl.at(n, k, y, x))) : 0.0;
                    ref[i] = double(t.alpha) * s + double(t.beta) * y0;
                    mag[i] = std::fabs(t.alpha) * a + std::fabs(t.beta * y0);
                }
        }

    int ran = 0;
    const cudnnConvolutionFwdAlgo_t algos[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                               CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                               CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
    for (auto algo : algos) {
        size_t ws = 0;
        CHECK(d->GetConvolutionForwardWorkspaceSize(h.h, ds.x, ds.w, ds.conv, ds.y, algo, &ws) ==
              CUDNN_STATUS_SUCCESS);
        DevBuf dWs(ws ? ws : 1);
        dY.up(Y0);
        const cudnnStatus_t st = d->ConvolutionForward(h.h, &t.alpha, ds.x, dX.p, ds.w, dW.p, ds.conv, algo,
                                                       ws ? dWs.p : nullptr, ws, &t.beta, ds.y, dY.p);
        CHECK_MSG(st == CUDNN_STATUS_SUCCESS, "algo " << int(algo) << ": " << d->GetErrorString(st));
        if (st != CUDNN_STATUS_SUCCESS) continue;
        ++ran;
        dY.down(Y);
        int bad = 0, touched = 0;
        for (int n = 0; n < t.N; ++n)
            for (int k = 0; k < t.K; ++k)
                for (int y = 0; y < Ho; ++y)
                    for (int x = 0; x < Wo; ++x) {
                        const size_t i = ((size_t(n) * t.K + k) * Ho + y) * Wo + x;
                        const double got = Y.get(size_t(yl.at(n, k, y, x)));
                        if (!near_ref(dt, got, ref[i], mag[i]) && bad++ < 5)
                            CHECK_MSG(false, "algo " << int(algo) << " y(" << n << "," << k << "," << y << "," << x
                                                     << ") = " << got << ", expected " << ref[i]);
                    }
        for (size_t i = 0; i < Y.count(); ++i)
            if (!y_used[i] && !Y.same_at(Y0, i)) ++touched;
        CHECK_MSG(bad == 0, "algo " << int(algo) << ": " << bad << " wrong outputs");
        CHECK_MSG(touched == 0, "algo " << int(algo) << ": " << touched << " padding elements of y written");
    }
    CHECK(ran == 3);
}

SDXL_TEST(fake_cudnn_version_and_error_strings) {
    const Dnn* d = dnn();
    if (!d) return;
    CHECK_MSG(d->GetVersion() / 10000 == CUDNN_MAJOR && CUDNN_MAJOR == 9, "version " << d->GetVersion());
#define NAME_IS(s) CHECK_MSG(std::string(d->GetErrorString(s)) == #s, #s << " -> " << d->GetErrorString(s))
    NAME_IS(CUDNN_STATUS_SUCCESS);
    NAME_IS(CUDNN_STATUS_NOT_INITIALIZED);
    NAME_IS(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH);
    NAME_IS(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH);
    NAME_IS(CUDNN_STATUS_DEPRECATED);
    NAME_IS(CUDNN_STATUS_LICENSE_ERROR);
    NAME_IS(CUDNN_STATUS_RUNTIME_IN_PROGRESS);
    NAME_IS(CUDNN_STATUS_RUNTIME_FP_OVERFLOW);
    NAME_IS(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED);
    NAME_IS(CUDNN_STATUS_BAD_PARAM);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_NULL_POINTER);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH);
    NAME_IS(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_SHAPE);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_PADDING);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API);
    NAME_IS(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE);
    NAME_IS(CUDNN_STATUS_INTERNAL_ERROR);
    NAME_IS(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED);
    NAME_IS(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE);
    NAME_IS(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED);
    NAME_IS(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED);
    NAME_IS(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM);
    NAME_IS(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED);
    NAME_IS(CUDNN_STATUS_EXECUTION_FAILED);
    NAME_IS(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER);
    NAME_IS(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS);
    NAME_IS(CUDNN_STATUS_EXECUTION_FAILED_CUDART);
    NAME_IS(CUDNN_STATUS_EXECUTION_FAILED_CURAND);
#undef NAME_IS
    CHECK(std::string(d->GetErrorString(cudnnStatus_t(2001))) == "CUDNN_STATUS_INVALID_VALUE");
    CHECK(std::strlen(d->GetErrorString(cudnnStatus_t(123456))) > 0);
}

SDXL_TEST(fake_cudnn_handle_and_descriptor_validation) {
    const Dnn* d = dnn();
    if (!d) return;
    DnnHandle h;
    cudaStream_t s = reinterpret_cast<cudaStream_t>(uintptr_t(0x42)), got = nullptr;
    CHECK(d->SetStream(h.h, s) == CUDNN_STATUS_SUCCESS);
    CHECK(d->GetStream(h.h, &got) == CUDNN_STATUS_SUCCESS && got == s);
    CHECK(d->Create(nullptr) == CUDNN_STATUS_BAD_PARAM);
    CHECK(d->SetStream(nullptr, nullptr) == CUDNN_STATUS_BAD_PARAM);
    Descs ds(d);
    const auto BAD = CUDNN_STATUS_BAD_PARAM, NS = CUDNN_STATUS_NOT_SUPPORTED, OK = CUDNN_STATUS_SUCCESS;
    const auto F = CUDNN_DATA_FLOAT;
    const auto NCHW = CUDNN_TENSOR_NCHW, NHWC = CUDNN_TENSOR_NHWC;
    CHECK(d->SetTensor4dDescriptor(ds.x, NCHW, F, 0, 3, 4, 5) == BAD);   // n == 0
    CHECK(d->SetTensor4dDescriptor(ds.x, NCHW, F, 1, -3, 4, 5) == BAD);  // c < 0
    CHECK(d->SetTensor4dDescriptor(ds.x, NCHW, F, 1, 3, 0, 5) == BAD);   // h == 0
    CHECK(d->SetTensor4dDescriptor(ds.x, NCHW, F, 1, 3, 4, 0) == BAD);   // w == 0
    CHECK(d->SetTensor4dDescriptor(ds.x, cudnnTensorFormat_t(7), F, 1, 3, 4, 5) == BAD);      // format
    CHECK(d->SetTensor4dDescriptor(ds.x, NCHW, cudnnDataType_t(99), 1, 3, 4, 5) == BAD);      // data type
    CHECK(d->SetTensor4dDescriptor(ds.x, NCHW, CUDNN_DATA_DOUBLE, 1, 3, 4, 5) == NS);         // not emulated
    CHECK(d->SetTensor4dDescriptor(ds.x, CUDNN_TENSOR_NCHW_VECT_C, F, 1, 4, 4, 5) == NS);     // not emulated
    CHECK(d->SetTensor4dDescriptor(nullptr, NCHW, F, 1, 3, 4, 5) == BAD);
    // NHWC: logical dims n, c, h, w; strides c = 1, w = C, h = W * C, n = H * W * C.
    CHECK(d->SetTensor4dDescriptor(ds.x, NHWC, CUDNN_DATA_HALF, 2, 3, 4, 5) == OK);
    cudnnDataType_t t;
    int n, c, hh, w, ns, cs, hs, wss;
    CHECK(d->GetTensor4dDescriptor(ds.x, &t, &n, &c, &hh, &w, &ns, &cs, &hs, &wss) == OK);
    CHECK(t == CUDNN_DATA_HALF && n == 2 && c == 3 && hh == 4 && w == 5);
    CHECK(cs == 1 && wss == 3 && hs == 15 && ns == 60);
    CHECK(d->SetTensor4dDescriptor(ds.x, NCHW, F, 2, 3, 4, 5) == OK);
    CHECK(d->GetTensor4dDescriptor(ds.x, &t, &n, &c, &hh, &w, &ns, &cs, &hs, &wss) == OK);
    CHECK(wss == 1 && hs == 5 && cs == 20 && ns == 60);
    CHECK(d->SetTensor4dDescriptorEx(ds.x, F, 1, 2, 3, 4, 100, 30, 6, 1) == OK);
    CHECK(d->SetTensor4dDescriptorEx(ds.x, F, 1, 2, 3, 4, 100, 30, 6, 0) == BAD);    // zero stride
    CHECK(d->SetTensor4dDescriptorEx(ds.x, F, 1, 2, 3, 4, 100, -30, 6, 1) == BAD);   // negative stride
    CHECK(d->SetTensor4dDescriptorEx(ds.x, F, 1, 0, 3, 4, 100, 30, 6, 1) == BAD);    // c == 0
    CHECK(d->SetFilter4dDescriptor(ds.w, F, NCHW, 0, 3, 3, 3) == BAD);               // k == 0
    CHECK(d->SetFilter4dDescriptor(ds.w, F, NCHW, 4, 3, -1, 3) == BAD);              // h < 0
    CHECK(d->SetFilter4dDescriptor(ds.w, F, cudnnTensorFormat_t(9), 4, 3, 3, 3) == BAD);
    CHECK(d->SetFilter4dDescriptor(ds.w, CUDNN_DATA_INT8, NCHW, 4, 3, 3, 3) == NS);
    CHECK(d->SetFilter4dDescriptor(ds.w, F, NHWC, 4, 3, 3, 3) == OK);
    CHECK(d->SetConvolution2dDescriptor(ds.conv, -1, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, F) == BAD);  // pad
    CHECK(d->SetConvolution2dDescriptor(ds.conv, 0, 0, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION, F) == BAD);   // stride
    CHECK(d->SetConvolution2dDescriptor(ds.conv, 0, 0, 1, 1, 1, 0, CUDNN_CROSS_CORRELATION, F) == BAD);   // dilation
    CHECK(d->SetConvolution2dDescriptor(ds.conv, 0, 0, 1, 1, 1, 1, cudnnConvolutionMode_t(2), F) == BAD); // mode
    CHECK(d->SetConvolution2dDescriptor(ds.conv, 0, 0, 1, 1, 1, 1, CUDNN_CONVOLUTION, cudnnDataType_t(-1)) == BAD);
    CHECK(d->SetConvolutionGroupCount(ds.conv, 0) == BAD);
    CHECK(d->SetConvolutionMathType(ds.conv, cudnnMathType_t(9)) == BAD);
    CHECK(d->DestroyTensorDescriptor(nullptr) == OK);  // NULL: no-op
}

SDXL_TEST(fake_cudnn_output_dim) {
    const Dnn* d = dnn();
    if (!d) return;
    Descs ds(d);
    CHECK(d->SetTensor4dDescriptor(ds.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 4, 9, 7) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetFilter4dDescriptor(ds.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 6, 2, 3, 3) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetConvolution2dDescriptor(ds.conv, 1, 2, 2, 3, 2, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
    int n = 0, c = 0, h = 0, w = 0;
    // groups 1: the input's 4 maps are not the filter's 2
    CHECK(d->GetConvolution2dForwardOutputDim(ds.conv, ds.x, ds.w, &n, &c, &h, &w) == CUDNN_STATUS_BAD_PARAM);
    CHECK(d->SetConvolutionGroupCount(ds.conv, 2) == CUDNN_STATUS_SUCCESS);
    CHECK(d->GetConvolution2dForwardOutputDim(ds.conv, ds.x, ds.w, &n, &c, &h, &w) == CUDNN_STATUS_SUCCESS);
    // h: 1 + (9 + 2 - ((3 - 1) * 2 + 1)) / 2 = 4; w: 1 + (7 + 4 - 3) / 3 = 3
    CHECK_MSG(n == 1 && c == 6 && h == 4 && w == 3, n << " " << c << " " << h << " " << w);
    // a dilated filter larger than the padded input
    CHECK(d->SetConvolution2dDescriptor(ds.conv, 0, 0, 1, 1, 5, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(d->GetConvolution2dForwardOutputDim(ds.conv, ds.x, ds.w, &n, &c, &h, &w) == CUDNN_STATUS_BAD_PARAM);
}

SDXL_TEST(fake_cudnn_conv_1x1_and_3x3_nchw) {
    ConvCase t;
    t.N = 2, t.C = 3, t.H = 5, t.W = 4, t.K = 4;  // 1x1
    run_conv(t);
    t.R = t.S = 3, t.ph = t.pw = 1, t.H = 7, t.W = 5, t.K = 5;  // 3x3, pad 1, odd sizes
    t.alpha = 2.0f, t.beta = 0.5f;
    run_conv(t);
    t.ph = 0, t.pw = 2;  // asymmetric pads
    run_conv(t);
}

SDXL_TEST(fake_cudnn_conv_stride_dilation_groups) {
    ConvCase t;
    t.N = 1, t.C = 4, t.H = 9, t.W = 6, t.K = 6, t.R = t.S = 3, t.ph = t.pw = 1, t.u = t.v = 2;  // stride 2
    run_conv(t);
    t.u = 1, t.v = 2, t.dh = t.dw = 2, t.ph = 2;  // dilation 2, mixed strides
    run_conv(t);
    t.dh = t.dw = 1, t.u = t.v = 1, t.G = 2;  // groups 2: C = 2 * 2, K = 2 * 3
    t.alpha = 0.5f, t.beta = -1.0f;
    run_conv(t);
}

SDXL_TEST(fake_cudnn_conv_mode_and_layouts) {
    ConvCase t;
    t.N = 2, t.C = 3, t.H = 6, t.W = 7, t.K = 2, t.R = 3, t.S = 2, t.ph = 1, t.pw = 1;  // asymmetric 3x2 kernel
    t.mode = CUDNN_CONVOLUTION;  // flipped filter
    run_conv(t);
    t.mode = CUDNN_CROSS_CORRELATION;
    run_conv(t);
    t.xfmt = CUDNN_TENSOR_NHWC, t.wfmt = CUDNN_TENSOR_NHWC;  // NHWC x / y, KRSC filter
    t.beta = 1.0f;
    run_conv(t);
    t.xfmt = CUDNN_TENSOR_NCHW, t.explicit_strides = true, t.beta = 0.25f;  // padded strides via ...Ex
    run_conv(t);
    t.explicit_strides = false, t.beta = 0.0f, t.nan_y = true;  // beta == 0: y's NaN must not propagate
    run_conv(t);
}

SDXL_TEST(fake_cudnn_conv_half_and_bfloat16) {
    ConvCase t;
    t.N = 1, t.C = 6, t.H = 5, t.W = 8, t.K = 4, t.R = t.S = 3, t.ph = t.pw = 1, t.alpha = 1.0f, t.beta = 0.5f;
    t.type = CUDNN_DATA_HALF, t.math = CUDNN_TENSOR_OP_MATH;
    run_conv(t);
    t.xfmt = t.wfmt = CUDNN_TENSOR_NHWC;
    run_conv(t);
    t.type = CUDNN_DATA_BFLOAT16, t.G = 2, t.u = 2;
    run_conv(t);
}

SDXL_TEST(fake_cudnn_float_tf32_only_without_fma_math) {
    const Dnn* d = dnn();
    if (!d) return;
    DnnHandle h;
    Descs ds(d);
    CHECK(d->SetTensor4dDescriptor(ds.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, 1) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetTensor4dDescriptor(ds.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, 1) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetFilter4dDescriptor(ds.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 1, 1, 1) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetConvolution2dDescriptor(ds.conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
    const float v = 1.0f + std::ldexp(1.0f, -12), one = 1.0f, zero = 0.0f;
    DevBuf dX(4), dW(4), dY(4);
    dX.up(&v, 4);
    dW.up(&v, 4);
    auto run = [&](cudnnMathType_t m) {
        CHECK(d->SetConvolutionMathType(ds.conv, m) == CUDNN_STATUS_SUCCESS);
        CHECK(d->ConvolutionForward(h.h, &one, ds.x, dX.p, ds.w, dW.p, ds.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, ds.y,
                                    dY.p) == CUDNN_STATUS_SUCCESS);
        float out = -1;
        CHECK(cudaMemcpy(&out, dY.p, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        return out;
    };
    CHECK(run(CUDNN_FMA_MATH) == 1.0f + std::ldexp(1.0f, -11));  // exact fp32
    CHECK(run(CUDNN_DEFAULT_MATH) == 1.0f);                      // TF32 permitted: 2^-12 rounded away
}

// The 3x3 F32 / F16 problem used by the algorithm and error tests.
struct Problem3x3 {
    const Dnn* d;
    Descs ds;
    int N = 1, C = 4, H = 6, W = 5, K = 3;
    Problem3x3(const Dnn* dd, cudnnDataType_t type) : d(dd), ds(dd) {
        CHECK(d->SetTensor4dDescriptor(ds.x, CUDNN_TENSOR_NCHW, type, N, C, H, W) == CUDNN_STATUS_SUCCESS);
        CHECK(d->SetTensor4dDescriptor(ds.y, CUDNN_TENSOR_NCHW, type, N, K, H, W) == CUDNN_STATUS_SUCCESS);
        CHECK(d->SetFilter4dDescriptor(ds.w, type, CUDNN_TENSOR_NCHW, K, C, 3, 3) == CUDNN_STATUS_SUCCESS);
        CHECK(d->SetConvolution2dDescriptor(ds.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
              CUDNN_STATUS_SUCCESS);
    }
};

SDXL_TEST(fake_cudnn_algorithm_list) {
    const Dnn* d = dnn();
    if (!d) return;
    DnnHandle h;
    int max_count = 0;
    CHECK(d->GetConvolutionForwardAlgorithmMaxCount(h.h, &max_count) == CUDNN_STATUS_SUCCESS);
    CHECK(max_count == int(CUDNN_CONVOLUTION_FWD_ALGO_COUNT) && max_count == 8);
    for (cudnnDataType_t type : {CUDNN_DATA_HALF, CUDNN_DATA_FLOAT}) {
        Problem3x3 p(d, type);
        std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(max_count));
        int returned = 0;
        CHECK(d->GetConvolutionForwardAlgorithm_v7(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, max_count, &returned,
                                                   perf.data()) == CUDNN_STATUS_SUCCESS);
        CHECK(returned == 8);
        std::vector<int> seen(8, 0);
        bool unsupported_seen = false;
        float last_time = 0;
        for (int i = 0; i < returned; ++i) {
            const auto& e = perf[size_t(i)];
            CHECK(int(e.algo) >= 0 && int(e.algo) < 8);
            if (int(e.algo) >= 0 && int(e.algo) < 8) ++seen[size_t(e.algo)];
            CHECK(e.time > 0);
            if (e.status == CUDNN_STATUS_SUCCESS) {
                CHECK_MSG(!unsupported_seen, "a runnable algorithm after a NOT_SUPPORTED one");
                CHECK_MSG(e.time >= last_time, "not sorted best first");
                last_time = e.time;
                size_t ws = 1234567;
                CHECK(d->GetConvolutionForwardWorkspaceSize(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, e.algo, &ws) ==
                      CUDNN_STATUS_SUCCESS);
                CHECK(ws == e.memory);
                CHECK(e.mathType == (type == CUDNN_DATA_FLOAT ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH));
            } else {
                CHECK(e.status == CUDNN_STATUS_NOT_SUPPORTED);
                unsupported_seen = true;
                size_t ws = 0;
                CHECK(d->GetConvolutionForwardWorkspaceSize(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, e.algo, &ws) ==
                      CUDNN_STATUS_NOT_SUPPORTED);
            }
        }
        for (int a = 0; a < 8; ++a) CHECK_MSG(seen[size_t(a)] == 1, "algo " << a << " listed " << seen[size_t(a)]);
        CHECK(perf[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM && perf[0].memory > 0);
        auto find = [&](cudnnConvolutionFwdAlgo_t a) {
            for (int i = 0; i < returned; ++i)
                if (perf[size_t(i)].algo == a) return perf[size_t(i)];
            return perf[0];
        };
        CHECK(find(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM).status == CUDNN_STATUS_SUCCESS);
        CHECK(find(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM).memory == 0);
        CHECK(find(CUDNN_CONVOLUTION_FWD_ALGO_GEMM).status == CUDNN_STATUS_SUCCESS);
        CHECK(find(CUDNN_CONVOLUTION_FWD_ALGO_GEMM).memory > 0);
        for (auto a : {CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
                       CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
                       CUDNN_CONVOLUTION_FWD_ALGO_DIRECT})
            CHECK(find(a).status == CUDNN_STATUS_NOT_SUPPORTED);
        // Fewer requested: the same best entries.
        std::vector<cudnnConvolutionFwdAlgoPerf_t> two(2);
        CHECK(d->GetConvolutionForwardAlgorithm_v7(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, 2, &returned,
                                                   two.data()) == CUDNN_STATUS_SUCCESS);
        CHECK(returned == 2 && two[0].algo == perf[0].algo && two[1].algo == perf[1].algo);
        CHECK(d->GetConvolutionForwardAlgorithm_v7(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, 0, &returned,
                                                   two.data()) == CUDNN_STATUS_BAD_PARAM);
    }
}

// cudnnFindConvolutionForwardAlgorithmEx: y holds the convolution afterwards (what ConvolutionForward with
// beta 0 gives), the list is sorted with the runnable algorithms first, an algorithm whose workspace exceeds the
// one given is not runnable, and the argument rules.
SDXL_TEST(fake_cudnn_find_algorithm_ex) {
    const Dnn* d = dnn();
    if (!d) return;
    DnnHandle h;
    Problem3x3 p(d, CUDNN_DATA_FLOAT);
    const auto PRE = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    size_t need = 0;
    CHECK(d->GetConvolutionForwardWorkspaceSize(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, PRE, &need) ==
          CUDNN_STATUS_SUCCESS);
    const size_t nx = size_t(p.N * p.C * p.H * p.W), nw = size_t(p.K * p.C * 9), ny = size_t(p.N * p.K * p.H * p.W);
    DevBuf dX(nx * 4), dW(nw * 4), dY(ny * 4), dRef(ny * 4), dWs(need);
    Store X(DT::F32, nx), Wt(DT::F32, nw), Y(DT::F32, ny), Ref(DT::F32, ny);
    for (size_t i = 0; i < nx; ++i) X.set(i, float(int(i % 7) - 3) * 0.25f);
    for (size_t i = 0; i < nw; ++i) Wt.set(i, float(int(i % 5) - 2) * 0.5f);
    for (size_t i = 0; i < ny; ++i) Y.set(i, 9.0f);  // overwritten by the benchmark runs
    dX.up(X);
    dW.up(Wt);
    dY.up(Y);
    const float one = 1.0f, zero = 0.0f;
    CHECK(d->ConvolutionForward(h.h, &one, p.ds.x, dX.p, p.ds.w, dW.p, p.ds.conv,
                                CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, p.ds.y,
                                dRef.p) == CUDNN_STATUS_SUCCESS);
    dRef.down(Ref);
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(8);
    int returned = 0;
    CHECK(d->FindConvolutionForwardAlgorithmEx(h.h, p.ds.x, dX.p, p.ds.w, dW.p, p.ds.conv, p.ds.y, dY.p, 8, &returned,
                                               perf.data(), dWs.p, need) == CUDNN_STATUS_SUCCESS);
    CHECK(returned == 8);
    dY.down(Y);
    bool same = true;
    for (size_t i = 0; i < ny; ++i) same = same && Y.get(i) == Ref.get(i);
    CHECK_MSG(same, "y after Find is not the convolution");
    CHECK(perf[0].status == CUDNN_STATUS_SUCCESS && perf[0].algo == PRE && perf[0].memory == need);
    bool unsupported_seen = false;
    for (int i = 0; i < returned; ++i) {
        if (perf[size_t(i)].status != CUDNN_STATUS_SUCCESS) unsupported_seen = true;
        else CHECK_MSG(!unsupported_seen, "a runnable algorithm after a NOT_SUPPORTED one");
    }
    // No workspace: only the workspace-free IMPLICIT_GEMM runs.
    CHECK(d->FindConvolutionForwardAlgorithmEx(h.h, p.ds.x, dX.p, p.ds.w, dW.p, p.ds.conv, p.ds.y, dY.p, 8, &returned,
                                               perf.data(), nullptr, 0) == CUDNN_STATUS_SUCCESS);
    CHECK(perf[0].status == CUDNN_STATUS_SUCCESS && perf[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM &&
          perf[0].memory == 0);
    CHECK(perf[1].status == CUDNN_STATUS_NOT_SUPPORTED);
    // Argument rules.
    CHECK(d->FindConvolutionForwardAlgorithmEx(h.h, p.ds.x, dX.p, p.ds.w, dW.p, p.ds.conv, p.ds.y, dY.p, 0, &returned,
                                               perf.data(), dWs.p, need) == CUDNN_STATUS_BAD_PARAM);
    CHECK(d->FindConvolutionForwardAlgorithmEx(h.h, p.ds.x, dX.p, p.ds.w, nullptr, p.ds.conv, p.ds.y, dY.p, 8,
                                               &returned, perf.data(), dWs.p, need) == CUDNN_STATUS_BAD_PARAM);
}

SDXL_TEST(fake_cudnn_forward_status_rules) {
    const Dnn* d = dnn();
    if (!d) return;
    DnnHandle h;
    Problem3x3 p(d, CUDNN_DATA_FLOAT);
    const auto PRE = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    size_t need = 0;
    CHECK(d->GetConvolutionForwardWorkspaceSize(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, PRE, &need) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(need > 0);
    DevBuf dX(size_t(p.N * p.C * p.H * p.W) * 4), dW(size_t(p.K * p.C * 9) * 4),
        dY(size_t(p.N * p.K * p.H * p.W) * 4), dWs(need);
    Store Y(DT::F32, size_t(p.N * p.K * p.H * p.W));
    for (size_t i = 0; i < Y.count(); ++i) Y.set(i, 3.0f);
    dY.up(Y);
    const float one = 1.0f, zero = 0.0f;
    auto fwd = [&](cudnnConvolutionFwdAlgo_t algo, void* ws, size_t ws_size, cudnnTensorDescriptor_t x,
                   cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t y, const float* alpha = nullptr) {
        return d->ConvolutionForward(h.h, alpha ? alpha : &one, x, dX.p, w, dW.p, p.ds.conv, algo, ws, ws_size, &zero,
                                     y, dY.p);
    };
    const auto BAD = CUDNN_STATUS_BAD_PARAM, NS = CUDNN_STATUS_NOT_SUPPORTED;
    CHECK(fwd(PRE, nullptr, need, p.ds.x, p.ds.w, p.ds.y) == BAD);     // workspace NULL
    CHECK(fwd(PRE, dWs.p, need - 1, p.ds.x, p.ds.w, p.ds.y) == BAD);   // workspace too small
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_FFT, dWs.p, need, p.ds.x, p.ds.w, p.ds.y) == NS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, dWs.p, need, p.ds.x, p.ds.w, p.ds.y) == NS);
    CHECK(fwd(cudnnConvolutionFwdAlgo_t(42), dWs.p, need, p.ds.x, p.ds.w, p.ds.y) == BAD);
    CHECK(d->ConvolutionForward(h.h, nullptr, p.ds.x, dX.p, p.ds.w, dW.p, p.ds.conv, PRE, dWs.p, need, &zero, p.ds.y,
                                dY.p) == BAD);  // alpha NULL
    Store after(DT::F32, Y.count());
    dY.down(after);
    CHECK(std::memcmp(after.bytes.data(), Y.bytes.data(), Y.bytes.size()) == 0);  // rejected calls wrote nothing
    CHECK(fwd(PRE, dWs.p, need, p.ds.x, p.ds.w, p.ds.y) == CUDNN_STATUS_SUCCESS);

    Descs other(d);
    // y's spatial size not the expected output size: NOT_SUPPORTED (cuDNN API, cudnnConvolutionForward()).
    CHECK(d->SetTensor4dDescriptor(other.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.N, p.K, p.H - 1, p.W) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, p.ds.w, other.y) == NS);
    // y's channel count not the filter's k, or its batch not x's: BAD_PARAM.
    CHECK(d->SetTensor4dDescriptor(other.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.N, p.K + 1, p.H, p.W) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, p.ds.w, other.y) == BAD);
    CHECK(d->SetTensor4dDescriptor(other.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.N + 1, p.K, p.H, p.W) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, p.ds.w, other.y) == BAD);
    // x's feature maps not the filter's: BAD_PARAM.
    CHECK(d->SetFilter4dDescriptor(other.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.K, p.C - 1, 3, 3) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, other.w, p.ds.y) == BAD);
    // Mixed data types: not in the supported-configurations table, NOT_SUPPORTED; the algorithm list then offers
    // nothing runnable.
    CHECK(d->SetFilter4dDescriptor(other.w, CUDNN_DATA_HALF, CUDNN_TENSOR_NCHW, p.K, p.C, 3, 3) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, other.w, p.ds.y) == NS);
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(8);
    int returned = 0;
    CHECK(d->GetConvolutionForwardAlgorithm_v7(h.h, p.ds.x, other.w, p.ds.conv, p.ds.y, 8, &returned, perf.data()) ==
          CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < returned; ++i) CHECK(perf[size_t(i)].status == CUDNN_STATUS_NOT_SUPPORTED);
    CHECK(d->SetTensor4dDescriptor(other.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_HALF, p.N, p.K, p.H, p.W) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, p.ds.w, other.y) == NS);
    // Compute type HALF (TRUE_HALF_CONFIG) is not emulated.
    CHECK(d->SetConvolution2dDescriptor(p.ds.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_HALF) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, p.ds.w, p.ds.y) == NS);
    // Group count: K = 3 is not a multiple of 2 (C = 4 = 2 x filter c 2).
    CHECK(d->SetConvolution2dDescriptor(p.ds.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(d->SetConvolutionGroupCount(p.ds.conv, 2) == CUDNN_STATUS_SUCCESS);
    CHECK(d->SetFilter4dDescriptor(other.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.K, p.C / 2, 3, 3) ==
          CUDNN_STATUS_SUCCESS);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, p.ds.x, other.w, p.ds.y) == BAD);
}

SDXL_TEST(fake_cudnn_forward_bad_device_pointers) {
    const Dnn* d = dnn();
    if (!d) return;
    DnnHandle h;
    Problem3x3 p(d, CUDNN_DATA_FLOAT);
    (void)cudaGetLastError();
    const auto PRE = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    size_t need = 0;
    CHECK(d->GetConvolutionForwardWorkspaceSize(h.h, p.ds.x, p.ds.w, p.ds.conv, p.ds.y, PRE, &need) ==
          CUDNN_STATUS_SUCCESS);
    const size_t xb = size_t(p.N * p.C * p.H * p.W) * 4, wb = size_t(p.K * p.C * 9) * 4,
                 yb = size_t(p.N * p.K * p.H * p.W) * 4;
    DevBuf dX(xb), dW(wb), dY(yb), dYshort(yb - 4), dWs(need), dWsShort(need - 1);
    Store Y(DT::F32, yb / 4);
    for (size_t i = 0; i < Y.count(); ++i) Y.set(i, 3.0f);
    dY.up(Y);
    std::vector<float> host(xb / 4, 1.0f);
    const float one = 1.0f, zero = 0.0f;
    auto fwd = [&](const void* x, const void* w, void* y, void* ws) {
        return d->ConvolutionForward(h.h, &one, p.ds.x, x, p.ds.w, w, p.ds.conv, PRE, ws, need, &zero, p.ds.y, y);
    };
    cudaError_t code;
    CHECK(fwd(host.data(), dW.p, dY.p, dWs.p) == CUDNN_STATUS_EXECUTION_FAILED);  // x on the host
    std::string msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "cudnnConvolutionForward") && contains(msg, "operand x"),
              msg);
    Store after(DT::F32, Y.count());
    dY.down(after);
    CHECK(std::memcmp(after.bytes.data(), Y.bytes.data(), Y.bytes.size()) == 0);  // y not written
    CHECK(fwd(dX.p, dW.p, dYshort.p, dWs.p) == CUDNN_STATUS_EXECUTION_FAILED);  // y one element short
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "operand y"), msg);
    CHECK(fwd(dX.p, dW.p, dY.p, dWsShort.p) == CUDNN_STATUS_EXECUTION_FAILED);  // workspace smaller than declared
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "operand workSpace"), msg);
    DevBuf dFreed(wb);
    void* stale = dFreed.p;
    dFreed.release();
    CHECK(fwd(dX.p, stale, dY.p, dWs.p) == CUDNN_STATUS_EXECUTION_FAILED);  // w freed
    msg = take_device_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress && contains(msg, "operand w"), msg);
    CHECK(fwd(dX.p, dW.p, dY.p, dWs.p) == CUDNN_STATUS_SUCCESS);
    CHECK(cudaGetLastError() == cudaSuccess);
}

}  // namespace
