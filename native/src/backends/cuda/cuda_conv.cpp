// CUDA conv2d on cuDNN 9's legacy convolution API (cudnnConvolutionForward, in libcudnn_cnn; deprecated in
// favour of the graph API but present and supported in 9.x), loaded at run time (cuda_libs.h).
//   - NCHW, groups 1, symmetric zero padding, stride per ops.h, dilation 1, cross-correlation (as torch);
//   - F32 / F16 / BF16 data with fp32 accumulation (compute type CUDNN_DATA_FLOAT);
//   - F32 uses FMA math only (no TF32) unless SDXL4J_CUDA_TF32=1, like the GEMMs (cuda_gemm.cpp);
//   - once per shape/dtype the descriptors are made and the algorithm chosen, then kept: measured on the GPU with
//     cudnnFindConvolutionForwardAlgorithmEx on the first call's own buffers (SDXL4J_CUDNN_FIND=0: cuDNN's
//     heuristic, cudnnGetConvolutionForwardAlgorithm_v7, without benchmarking; also while a CUDA graph is being
//     captured); the workspace comes from the caching allocator; if that allocation fails the best algorithm
//     that needs no workspace is used from then on;
//   - the bias, and for conv2d_fused the per-sample bias (the ResNet time embedding) and the residual, are
//     written into the output first in one pass (cuda_bias.cu) and the convolution accumulates onto it
//     (beta = 1): one rounding of conv + epilogue to the output dtype, no separate add passes.
// Later optimisation (not done): NHWC tensors for F16/BF16, where cuDNN's tensor-core kernels are faster and
// need no layout transposes; a fused conv+bias(+activation) graph.
#include "backends/backend.h"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_libs.h"

#if defined(SDXL_HAVE_CUDNN)

#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "backends/cuda/cuda_bias.h"
#include "backends/cuda/cuda_check.cuh"
#include "core/device.h"
#include "core/op_profile.h"

namespace sdxl::cuda {

namespace {

// The entry points we use, resolved with dlsym (the types come from the headers).
struct Api {
    decltype(&::cudnnGetVersion) GetVersion;
    decltype(&::cudnnGetErrorString) GetErrorString;
    decltype(&::cudnnCreate) Create;
    decltype(&::cudnnSetStream) SetStream;
    decltype(&::cudnnCreateTensorDescriptor) CreateTensorDescriptor;
    decltype(&::cudnnSetTensor4dDescriptor) SetTensor4dDescriptor;
    decltype(&::cudnnDestroyTensorDescriptor) DestroyTensorDescriptor;
    decltype(&::cudnnCreateFilterDescriptor) CreateFilterDescriptor;
    decltype(&::cudnnSetFilter4dDescriptor) SetFilter4dDescriptor;
    decltype(&::cudnnDestroyFilterDescriptor) DestroyFilterDescriptor;
    decltype(&::cudnnCreateConvolutionDescriptor) CreateConvolutionDescriptor;
    decltype(&::cudnnSetConvolution2dDescriptor) SetConvolution2dDescriptor;
    decltype(&::cudnnSetConvolutionMathType) SetConvolutionMathType;
    decltype(&::cudnnDestroyConvolutionDescriptor) DestroyConvolutionDescriptor;
    decltype(&::cudnnGetConvolutionForwardAlgorithmMaxCount) GetConvolutionForwardAlgorithmMaxCount;
    decltype(&::cudnnGetConvolutionForwardAlgorithm_v7) GetConvolutionForwardAlgorithm_v7;
    decltype(&::cudnnGetConvolutionForwardWorkspaceSize) GetConvolutionForwardWorkspaceSize;
    decltype(&::cudnnConvolutionForward) ConvolutionForward;
    decltype(&::cudnnFindConvolutionForwardAlgorithmEx) FindConvolutionForwardAlgorithmEx;
};

template <typename Fn>
void resolve(Fn& fn, const char* name) {
    fn = reinterpret_cast<Fn>(libs::symbol(libs::cudnn(), name));
}

Api* g_api = nullptr;  // set once by dnn() before any check can run

const char* status_name(cudnnStatus_t s) { return g_api ? g_api->GetErrorString(s) : "?"; }

// libs::cudnn_error_code maps these by number (cuda_libs.cpp has no cuDNN headers).
static_assert(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED == 4003 &&
                  CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED == 4004,
              "cuDNN allocation-failure status values changed");
static_assert(CUDNN_STATUS_NOT_SUPPORTED == 3000 && CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE / 1000 == 3 &&
                  CUDNN_STATUS_INTERNAL_ERROR / 1000 == 4,
              "cuDNN NOT_SUPPORTED status range changed");

// Names the call, file and line; allocation failures are OUT_OF_MEMORY, a configuration cuDNN does not support
// (e.g. a data type on this GPU) UNSUPPORTED, anything else DEVICE_ERROR.
#define SDXL_CUDNN_CHECK(call)                                                                               \
    do {                                                                                                     \
        const cudnnStatus_t st_ = (call);                                                                    \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                                     \
            ::sdxl::cuda::libs::fail_call("cuDNN", int(st_), status_name(st_),                               \
                                          ::sdxl::cuda::libs::cudnn_error_code(int(st_)), #call, __FILE__,   \
                                          __LINE__);                                                         \
    } while (0)

// Algorithm choice for one problem: key = N, C, H, W, O, kh, kw, stride, padding, dtype.
using Key = std::tuple<int, int, int, int, int, int, int, int, int, int>;
struct Choice {
    cudnnConvolutionFwdAlgo_t algo;
    cudnnMathType_t math;
    size_t workspace;
    bool has_fallback;  // a workspace-free alternative exists
    cudnnConvolutionFwdAlgo_t fallback_algo;
    cudnnMathType_t fallback_math;
};

// The descriptors of one problem shape, destroyed with its plan.
struct Descriptors {
    const Api& api;
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    explicit Descriptors(const Api& a) : api(a) {
        SDXL_CUDNN_CHECK(api.CreateTensorDescriptor(&x));
        SDXL_CUDNN_CHECK(api.CreateTensorDescriptor(&y));
        SDXL_CUDNN_CHECK(api.CreateFilterDescriptor(&w));
        SDXL_CUDNN_CHECK(api.CreateConvolutionDescriptor(&conv));
    }
    ~Descriptors() {
        if (conv) (void)api.DestroyConvolutionDescriptor(conv);
        if (w) (void)api.DestroyFilterDescriptor(w);
        if (y) (void)api.DestroyTensorDescriptor(y);
        if (x) (void)api.DestroyTensorDescriptor(x);
    }
    Descriptors(const Descriptors&) = delete;
    Descriptors& operator=(const Descriptors&) = delete;
};

// Everything one problem shape needs, made once and kept: its descriptors, the algorithm chosen for it and that
// algorithm's workspace size. Later calls of the shape only allocate the workspace and run.
struct Plan {
    std::unique_ptr<Descriptors> ds;
    Choice c{};
    size_t ws_size = 0;
};

struct Dnn {
    Api api{};
    cudnnHandle_t handle = nullptr;
    bool tf32 = false;
    size_t version = 0;
    std::mutex mu;  // a cuDNN handle must not be used by two threads at once; also guards the cache
    cudaStream_t bound = nullptr;  // the stream the handle is set to
    bool find = true;              // benchmark algorithms once per shape (SDXL4J_CUDNN_FIND=0: heuristic only)
    std::map<Key, Plan> plans;
};

Dnn& dnn() {
    static Dnn* d = [] {
        libs::require(libs::cudnn(), "conv2d");
        auto* s = new Dnn();
        try {
            Api& a = s->api;
            resolve(a.GetVersion, "cudnnGetVersion");
            resolve(a.GetErrorString, "cudnnGetErrorString");
            resolve(a.Create, "cudnnCreate");
            resolve(a.SetStream, "cudnnSetStream");
            resolve(a.CreateTensorDescriptor, "cudnnCreateTensorDescriptor");
            resolve(a.SetTensor4dDescriptor, "cudnnSetTensor4dDescriptor");
            resolve(a.DestroyTensorDescriptor, "cudnnDestroyTensorDescriptor");
            resolve(a.CreateFilterDescriptor, "cudnnCreateFilterDescriptor");
            resolve(a.SetFilter4dDescriptor, "cudnnSetFilter4dDescriptor");
            resolve(a.DestroyFilterDescriptor, "cudnnDestroyFilterDescriptor");
            resolve(a.CreateConvolutionDescriptor, "cudnnCreateConvolutionDescriptor");
            resolve(a.SetConvolution2dDescriptor, "cudnnSetConvolution2dDescriptor");
            resolve(a.SetConvolutionMathType, "cudnnSetConvolutionMathType");
            resolve(a.DestroyConvolutionDescriptor, "cudnnDestroyConvolutionDescriptor");
            resolve(a.GetConvolutionForwardAlgorithmMaxCount, "cudnnGetConvolutionForwardAlgorithmMaxCount");
            resolve(a.GetConvolutionForwardAlgorithm_v7, "cudnnGetConvolutionForwardAlgorithm_v7");
            resolve(a.GetConvolutionForwardWorkspaceSize, "cudnnGetConvolutionForwardWorkspaceSize");
            resolve(a.ConvolutionForward, "cudnnConvolutionForward");
            resolve(a.FindConvolutionForwardAlgorithmEx, "cudnnFindConvolutionForwardAlgorithmEx");
            s->version = a.GetVersion();
            if (s->version / 10000 != CUDNN_MAJOR)
                fail(ErrorCode::DEVICE_ERROR, "cuDNN ", s->version, " loaded from ", libs::cudnn().path,
                     " is not the major version ", CUDNN_MAJOR, " this library was compiled against");
            g_api = &s->api;
            SDXL_CUDNN_CHECK(a.Create(&s->handle));
            SDXL_CUDNN_CHECK(a.SetStream(s->handle, stream()));
            s->bound = stream();
            const char* t = std::getenv("SDXL4J_CUDA_TF32");
            s->tf32 = t && t[0] == '1';
            const char* f = std::getenv("SDXL4J_CUDNN_FIND");
            s->find = !(f && f[0] == '0');
        } catch (...) {
            if (g_api == &s->api) g_api = nullptr;
            delete s;
            throw;
        }
        return s;
    }();
    return *d;
}

// Device workspace from the caching allocator, returned on every path (stream-ordered reuse is safe).
struct Workspace {
    void* ptr = nullptr;
    ~Workspace() { device::cuda_free(ptr); }
};

cudnnDataType_t data_type(DType t) {
    switch (t) {
        case DType::F32: return CUDNN_DATA_FLOAT;
        case DType::F16: return CUDNN_DATA_HALF;
        case DType::BF16: return CUDNN_DATA_BFLOAT16;
        default: break;
    }
    fail(ErrorCode::UNSUPPORTED, "conv2d on CUDA supports F32, F16 and BF16, not ", dtype_name(t));
}

int to_int(int64_t v, const char* what) {
    if (v < 0 || v > INT_MAX) fail(ErrorCode::UNSUPPORTED, "conv2d on CUDA: ", what, " = ", v, " exceeds int range");
    return int(v);
}

// Math types allowed for a dtype: no down-conversion ever; no tensor cores for F32 unless TF32 is allowed.
bool math_allowed(cudnnMathType_t m, DType dt, bool tf32) {
    if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
    if (dt == DType::F32 && !tf32 && m == CUDNN_TENSOR_OP_MATH) return false;
    return true;
}

// cuDNN's heuristic list for the problem, best first (cudnnGetConvolutionForwardAlgorithm_v7, no benchmarking).
std::vector<cudnnConvolutionFwdAlgoPerf_t> heuristic_list(Dnn& d, const Descriptors& ds) {
    int max_count = 0;
    SDXL_CUDNN_CHECK(d.api.GetConvolutionForwardAlgorithmMaxCount(d.handle, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(size_t(max_count > 0 ? max_count : 1));
    int returned = 0;
    SDXL_CUDNN_CHECK(d.api.GetConvolutionForwardAlgorithm_v7(d.handle, ds.x, ds.w, ds.conv, ds.y, int(perf.size()),
                                                             &returned, perf.data()));
    perf.resize(size_t(returned));
    return perf;
}

// From a list ordered best first: the first usable entry needing at most `cap` bytes of workspace, and the first
// later one needing none (the fallback when the workspace cannot be had). False when none is usable.
bool pick(const std::vector<cudnnConvolutionFwdAlgoPerf_t>& perf, DType dt, bool tf32, size_t cap, Choice* out) {
    Choice c{};
    bool found = false;
    for (const auto& p : perf) {
        if (p.status != CUDNN_STATUS_SUCCESS || !math_allowed(p.mathType, dt, tf32) || p.memory > cap) continue;
        // CUDNN_DEFAULT_MATH permits TF32 tensor cores for F32 on sm_80+: F32 without TF32 runs FMA math only.
        const cudnnMathType_t math = dt == DType::F32 && !tf32 ? CUDNN_FMA_MATH : p.mathType;
        if (!found) {
            c.algo = p.algo;
            c.math = math;
            found = true;
        } else if (p.memory == 0) {
            c.has_fallback = true;
            c.fallback_algo = p.algo;
            c.fallback_math = math;
            break;
        }
    }
    if (found) *out = c;
    return found;
}

Choice choose(Dnn& d, const std::vector<cudnnConvolutionFwdAlgoPerf_t>& heuristic, DType dt, const Tensor& x) {
    Choice c{};
    if (!pick(heuristic, dt, d.tf32, SIZE_MAX, &c))
        fail(ErrorCode::UNSUPPORTED, "conv2d on CUDA: cuDNN ", d.version, " offers no algorithm for ", x.describe(),
             " (", heuristic.size(), " candidates, none usable)");
    return c;
}

// The algorithm measured fastest on this GPU (cudnnFindConvolutionForwardAlgorithmEx on the call's own buffers;
// it overwrites y, which the caller fills afterwards), with the workspace the heuristic's candidates ask for,
// up to kFindWorkspaceCap. Falls back to the heuristic's choice when nothing usable is measured, or when the
// workspace cannot be had.
constexpr size_t kFindWorkspaceCap = size_t(256) << 20;

Choice find(Dnn& d, const Descriptors& ds, DType dt, const Tensor& x, const void* xp, const void* wp, void* yp) {
    const std::vector<cudnnConvolutionFwdAlgoPerf_t> heuristic = heuristic_list(d, ds);
    const Choice fallback = choose(d, heuristic, dt, x);
    size_t cap = 0;
    for (const auto& p : heuristic) {
        if (p.status == CUDNN_STATUS_SUCCESS && math_allowed(p.mathType, dt, d.tf32) && p.memory <= kFindWorkspaceCap)
            cap = std::max(cap, p.memory);
    }
    Workspace ws;
    if (cap > 0) {
        try {
            ws.ptr = device::cuda_malloc(cap);
        } catch (const Error& e) {
            if (e.code() != ErrorCode::OUT_OF_MEMORY) throw;
            cap = 0;  // benchmark the workspace-free algorithms only
        }
    }
    int max_count = 0;
    SDXL_CUDNN_CHECK(d.api.GetConvolutionForwardAlgorithmMaxCount(d.handle, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> measured(size_t(max_count > 0 ? max_count : 1));
    int returned = 0;
    profile::count_device_call();
    SDXL_CUDNN_CHECK(d.api.FindConvolutionForwardAlgorithmEx(d.handle, ds.x, xp, ds.w, wp, ds.conv, ds.y, yp,
                                                             int(measured.size()), &returned, measured.data(), ws.ptr,
                                                             cap));
    measured.resize(size_t(returned));  // sorted by measured time, fastest first
    Choice c{};
    if (!pick(measured, dt, d.tf32, cap, &c)) return fallback;
    if (!c.has_fallback && fallback.has_fallback) {
        c.has_fallback = true;
        c.fallback_algo = fallback.fallback_algo;
        c.fallback_math = fallback.fallback_math;
    }
    return c;
}

// x [N, C, H, W] * w [O, C, kh, kw] (+ b [O]) (+ sample_bias [N, O] per (n, o)) (+ residual [N, O, Ho, Wo])
// -> [N, O, Ho, Wo]. The epilogue terms are one pre-filled start value the convolution accumulates onto.
Tensor conv2d_fused(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding,
                    const Tensor& sample_bias, const Tensor& residual) {
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const int64_t O = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
    const int64_t Ho = (H + 2 * int64_t(padding) - kh) / stride + 1, Wo = (W + 2 * int64_t(padding) - kw) / stride + 1;
    const DType dt = x.dtype();
    const cudnnDataType_t type = data_type(dt);
    Tensor y = Tensor::empty({N, O, Ho, Wo}, dt, Device::CUDA);
    if (y.numel() == 0) return y;
    // The start value: bias, time embedding and residual in one pass (nothing when there are none).
    const bool epilogue = b.defined() || sample_bias.defined() || residual.defined();
    auto fill_start = [&] {
        const Tensor bc = b.defined() ? b.contiguous() : Tensor();
        const Tensor sc = sample_bias.defined() ? sample_bias.contiguous() : Tensor();
        const Tensor rc = residual.defined() ? residual.contiguous() : Tensor();
        fill_epilogue(y.raw_data(), dt, rc.defined() ? rc.raw_data() : nullptr, bc.defined() ? bc.raw_data() : nullptr,
                      sc.defined() ? sc.raw_data() : nullptr, N, O, Ho * Wo);
    };
    if (C == 0) {  // empty sums: the epilogue terms or zeros
        if (!epilogue) return Tensor::zeros({N, O, Ho, Wo}, dt, Device::CUDA);
        fill_start();
        return y;
    }
    const Tensor xc = x.contiguous(), wc = w.contiguous();

    Dnn& d = dnn();
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.bound != stream()) {  // the handle follows this thread's stream (a graph capture's while capturing)
        SDXL_CUDNN_CHECK(d.api.SetStream(d.handle, stream()));
        d.bound = stream();
    }
    const Key key{to_int(N, "N"), to_int(C, "C"), to_int(H, "H"), to_int(W, "W"), to_int(O, "O"), to_int(kh, "kh"),
                  to_int(kw, "kw"), stride, padding, int(dt)};
    auto it = d.plans.find(key);
    if (it == d.plans.end()) {
        Plan plan;
        plan.ds = std::make_unique<Descriptors>(d.api);
        const Descriptors& ds = *plan.ds;
        SDXL_CUDNN_CHECK(d.api.SetTensor4dDescriptor(ds.x, CUDNN_TENSOR_NCHW, type, int(N), int(C), int(H), int(W)));
        SDXL_CUDNN_CHECK(d.api.SetFilter4dDescriptor(ds.w, type, CUDNN_TENSOR_NCHW, int(O), int(C), int(kh), int(kw)));
        SDXL_CUDNN_CHECK(d.api.SetTensor4dDescriptor(ds.y, CUDNN_TENSOR_NCHW, type, int(N), int(O), to_int(Ho, "Ho"),
                                                     to_int(Wo, "Wo")));
        SDXL_CUDNN_CHECK(d.api.SetConvolution2dDescriptor(ds.conv, padding, padding, stride, stride, 1, 1,
                                                          CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        SDXL_CUDNN_CHECK(d.api.SetConvolutionMathType(
            ds.conv, dt == DType::F32 && !d.tf32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
        // Benchmarking synchronises and allocates: never while this thread's stream captures a CUDA graph (the
        // graph runner's eager first call of each shape has chosen by then).
        cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
        SDXL_CUDA_CHECK(cudaStreamIsCapturing(stream(), &capturing));
        plan.c = d.find && capturing == cudaStreamCaptureStatusNone
                     ? find(d, ds, dt, x, xc.raw_data(), wc.raw_data(), y.raw_data())
                     : choose(d, heuristic_list(d, ds), dt, x);
        SDXL_CUDNN_CHECK(d.api.SetConvolutionMathType(ds.conv, plan.c.math));
        SDXL_CUDNN_CHECK(
            d.api.GetConvolutionForwardWorkspaceSize(d.handle, ds.x, ds.w, ds.conv, ds.y, plan.c.algo, &plan.ws_size));
        it = d.plans.emplace(key, std::move(plan)).first;
    }
    Plan& plan = it->second;
    const Descriptors& ds = *plan.ds;

    Workspace ws;
    size_t ws_size = plan.ws_size;
    if (ws_size > 0) {
        try {
            ws.ptr = device::cuda_malloc(ws_size);
        } catch (const Error& e) {
            Choice& c = plan.c;
            if (e.code() != ErrorCode::OUT_OF_MEMORY || !c.has_fallback) throw;
            // Not enough memory for the fast algorithm's workspace: use the workspace-free one from now on.
            c.algo = c.fallback_algo;
            c.math = c.fallback_math;
            c.has_fallback = false;
            SDXL_CUDNN_CHECK(d.api.SetConvolutionMathType(ds.conv, c.math));
            SDXL_CUDNN_CHECK(
                d.api.GetConvolutionForwardWorkspaceSize(d.handle, ds.x, ds.w, ds.conv, ds.y, c.algo, &plan.ws_size));
            ws_size = plan.ws_size;
            if (ws_size > 0) ws.ptr = device::cuda_malloc(ws_size);
        }
    }

    float beta = 0.0f;
    if (epilogue) {
        fill_start();
        beta = 1.0f;
    }
    const float alpha = 1.0f;
    profile::count_device_call();
    SDXL_CUDNN_CHECK(d.api.ConvolutionForward(d.handle, &alpha, ds.x, xc.raw_data(), ds.w, wc.raw_data(), ds.conv,
                                              plan.c.algo, ws.ptr, ws_size, &beta, ds.y, y.raw_data()));
    return y;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding) {
    return conv2d_fused(x, w, b, stride, padding, Tensor(), Tensor());
}

}  // namespace

void register_conv_ops(Backend& table) {
    table.conv2d = conv2d;
    table.conv2d_fused = conv2d_fused;
}

namespace libs {
bool conv_compiled() { return true; }
}  // namespace libs

}  // namespace sdxl::cuda

#else  // no cuDNN headers at build time: conv2d stays null (UNSUPPORTED), see cmake/SdxlCudaLibs.cmake

namespace sdxl::cuda {

void register_conv_ops(Backend&) {}

namespace libs {
bool conv_compiled() { return false; }
}  // namespace libs

}  // namespace sdxl::cuda

#endif
