// A host test double of cuDNN 9 (libcudnn.so.9) for the CUDA emulator: the legacy convolution API the backend
// resolves (cuda_conv.cpp) plus the cheap helpers around it, written from NVIDIA's cuDNN 9 API Reference (cited
// below as "cuDNN API", with the library page and function concerned: cudnn_graph, cudnn_ops, cudnn_cnn).
// Nothing here is derived from NVIDIA's code; the real headers are included so that the compiler checks every
// signature and enum value.
//
// The emulated device runs everything synchronously and in order, so a stream is only remembered (while it
// captures a graph, cudnnConvolutionForward is recorded as a node instead of run: sdxl_emu::enqueue). Device memory
// is host memory handed out by the emulator's cudaMalloc: every pointer the forward convolution dereferences
// (x, w, y and the workspace it needs) is first checked against the emulator's allocation table (emu_runtime.h)
// over the exact byte range the call touches; a bad one is reported as cudaErrorIllegalAddress (700) and the call
// returns CUDNN_STATUS_EXECUTION_FAILED, as a faulting kernel inside real cuDNN would look to the caller.
//
// Numerics: every algorithm the fake runs computes the same numbers with direct loops: products accumulated in
// fp32 in the order (input channel, filter row, filter column), then alpha * acc + beta * y in fp32, rounded once
// to y's type, round-to-nearest-even (core/half.h).
#include <cudnn.h>

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

#include <memory>

#include "backends/cuda/emulator/emu_runtime.h"
#include "backends/cuda/emulator/fake_common.h"
#include "core/half.h"

struct cudnnContext {
    cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct {
    bool set = false;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    int n = 0, c = 0, h = 0, w = 0;
    int ns = 0, cs = 0, hs = 0, ws = 0;  // strides in elements
};

struct cudnnFilterStruct {
    bool set = false;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
    int k = 0, c = 0, h = 0, w = 0;
};

struct cudnnConvolutionStruct {
    bool set = false;
    int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // cuDNN API, cudnnSetConvolutionMathType(): the default
    int groups = 1;                             // cuDNN API, cudnnSetConvolutionGroupCount(): 1 by default
};

namespace {

using sdxl_emu::Ty;
using sdxl_emu::ty_size;
using sdxl_emu::load;
using sdxl_emu::store;

// Live handles (fake_common.h).
sdxl_emu::LiveHandles<cudnnContext>& handles() { return sdxl_emu::LiveHandles<cudnnContext>::instance(); }
bool live(const cudnnContext* h) { return handles().live(h); }

// cuDNN API (cudnn_graph, cudnnGetLastErrorString()): the message of the most recent error, per thread.
thread_local std::string t_last_error;

cudnnStatus_t fail(cudnnStatus_t s, const std::string& why) {
    t_last_error = why;
    return s;
}

// Data types: an enumerant the header does not define is BAD_PARAM ("dataType has an invalid enumerant value",
// cuDNN API, cudnn_ops, cudnnSetTensor4dDescriptor()); FLOAT, HALF and BFLOAT16 are implemented; the other valid
// ones (DOUBLE, the integer and FP8/FP4 types, ...) are NOT_SUPPORTED by this fake.
cudnnStatus_t check_type(cudnnDataType_t t, const char* what) {
    const int v = int(t);
    if (v < int(CUDNN_DATA_FLOAT) || v > int(CUDNN_DATA_COMPLEX_FP64))
        return fail(CUDNN_STATUS_BAD_PARAM, std::string(what) + ": invalid cudnnDataType_t " + std::to_string(v));
    if (t != CUDNN_DATA_FLOAT && t != CUDNN_DATA_HALF && t != CUDNN_DATA_BFLOAT16)
        return fail(CUDNN_STATUS_NOT_SUPPORTED,
                    std::string(what) + ": the emulator's cuDNN implements FLOAT, HALF and BFLOAT16 data only");
    return CUDNN_STATUS_SUCCESS;
}

Ty to_ty(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? Ty::F32 : t == CUDNN_DATA_HALF ? Ty::F16 : Ty::BF16; }

// Formats: NCHW and NHWC are implemented; NCHW_VECT_C (vectorised INT8 layouts) is valid but NOT_SUPPORTED here;
// anything else is an invalid enumerant, BAD_PARAM.
cudnnStatus_t check_format(cudnnTensorFormat_t f, const char* what) {
    if (f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC) return CUDNN_STATUS_SUCCESS;
    if (f == CUDNN_TENSOR_NCHW_VECT_C)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, std::string(what) + ": CUDNN_TENSOR_NCHW_VECT_C is not emulated");
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(what) + ": invalid cudnnTensorFormat_t " + std::to_string(int(f)));
}

// TF32: fp32 with 10 mantissa bits, rounded to nearest, ties away from zero (PTX cvt.rna.tf32.f32).
inline float round_tf32(float f) {
    uint32_t u = sdxl::float_bits(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;
    return sdxl::bits_float((u + 0x1000u) & 0xffffe000u);
}

// cuDNN API (cudnn_cnn, cudnnGetConvolution2dForwardOutputDim()): for each spatial dimension
//   out = 1 + (in + 2 * pad - ((filter - 1) * dilation + 1)) / stride;
// n = the input's n, c = the filter's k. BAD_PARAM when a descriptor is missing or not set, when the input's
// feature maps differ from the filter's times the group count, or when the dilated filter is larger than the
// padded input (no output).
cudnnStatus_t output_dim(const cudnnConvolutionStruct* conv, const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                         int* n, int* c, int* h, int* wo) {
    if (!conv || !x || !w) return fail(CUDNN_STATUS_BAD_PARAM, "output dim: a descriptor is NULL");
    if (!conv->set || !x->set || !w->set) return fail(CUDNN_STATUS_BAD_PARAM, "output dim: a descriptor was not set");
    if (int64_t(w->c) * conv->groups != x->c)
        return fail(CUDNN_STATUS_BAD_PARAM, "the input has " + std::to_string(x->c) + " feature maps, the filter " +
                                                std::to_string(w->c) + " per group x " +
                                                std::to_string(conv->groups) + " groups");
    const int64_t eh = int64_t(w->h - 1) * conv->dil_h + 1, ew = int64_t(w->w - 1) * conv->dil_w + 1;
    const int64_t ph = int64_t(x->h) + 2 * int64_t(conv->pad_h), pw = int64_t(x->w) + 2 * int64_t(conv->pad_w);
    if (eh > ph || ew > pw)
        return fail(CUDNN_STATUS_BAD_PARAM, "the (dilated) filter is larger than the padded input");
    *n = x->n;
    *c = w->k;
    *h = int(1 + (ph - eh) / conv->u);
    *wo = int(1 + (pw - ew) / conv->v);
    return CUDNN_STATUS_SUCCESS;
}

// One forward convolution problem, validated.
struct Problem {
    const cudnnTensorStruct* x;
    const cudnnFilterStruct* w;
    const cudnnConvolutionStruct* conv;
    const cudnnTensorStruct* y;
    int N, C, H, W, K, R, S, Ho, Wo, G, Cg, Kg;
    Ty type;
    bool supported;  // false: a valid problem the fake does not run (every algorithm is NOT_SUPPORTED)
    cudnnStatus_t unsupported_status;
    std::string unsupported_why;
};

// The checks of cuDNN API (cudnn_cnn, cudnnConvolutionForward()), "Returns":
//   BAD_PARAM: a NULL descriptor; xDesc and wDesc with a non-matching number of input feature maps per group;
//     yDesc or wDesc with an output channel count that is not a multiple of the group count; the filter larger
//     than the padded input; (here also) yDesc's n or c not the input's n and the filter's k;
//   NOT_SUPPORTED: yDesc's spatial sizes not the expected ones (cudnnGetConvolutionNdForwardOutputDim()); a
//     configuration outside the table of supported configurations: the fake implements FLOAT_CONFIG,
//     PSEUDO_HALF_CONFIG and PSEUDO_BFLOAT16_CONFIG (x, w and y all FLOAT, HALF or BFLOAT16, compute type FLOAT),
//     so mixed data types and other compute types are NOT_SUPPORTED.
// BAD_PARAM problems are returned as the status; NOT_SUPPORTED ones as p->supported = false (so that the
// algorithm query can still list every algorithm as NOT_SUPPORTED).
cudnnStatus_t analyse(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                      const cudnnTensorStruct* y, Problem* p) {
    if (!x || !w || !conv || !y) return fail(CUDNN_STATUS_BAD_PARAM, "a descriptor is NULL");
    if (!x->set || !w->set || !conv->set || !y->set) return fail(CUDNN_STATUS_BAD_PARAM, "a descriptor was not set");
    int on, oc, oh, ow;
    const cudnnStatus_t s = output_dim(conv, x, w, &on, &oc, &oh, &ow);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (w->k % conv->groups != 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "the filter's " + std::to_string(w->k) +
                                                " output channels are not a multiple of the group count " +
                                                std::to_string(conv->groups));
    if (y->n != on || y->c != oc)
        return fail(CUDNN_STATUS_BAD_PARAM, "yDesc has n = " + std::to_string(y->n) + ", c = " +
                                                std::to_string(y->c) + "; expected " + std::to_string(on) + ", " +
                                                std::to_string(oc));
    *p = Problem{x, w, conv, y, x->n, x->c, x->h, x->w, w->k, w->h, w->w, oh, ow, conv->groups,
                 w->c, w->k / conv->groups, to_ty(x->type), true, CUDNN_STATUS_SUCCESS, ""};
    if (y->h != oh || y->w != ow) {
        p->supported = false;
        p->unsupported_status = CUDNN_STATUS_NOT_SUPPORTED;
        p->unsupported_why = "yDesc is " + std::to_string(y->h) + "x" + std::to_string(y->w) +
                             " spatially; the convolution gives " + std::to_string(oh) + "x" + std::to_string(ow);
    } else if (x->type != w->type || x->type != y->type) {
        p->supported = false;
        p->unsupported_status = CUDNN_STATUS_NOT_SUPPORTED;
        p->unsupported_why = "x, w and y have different data types (not a supported configuration)";
    } else if (conv->compute != CUDNN_DATA_FLOAT) {
        p->supported = false;
        p->unsupported_status = CUDNN_STATUS_NOT_SUPPORTED;
        p->unsupported_why = "the emulator's cuDNN implements compute type FLOAT only";
    }
    return CUDNN_STATUS_SUCCESS;
}

// The algorithms the fake runs, and their (made-up but deterministic and plausible) workspace needs.
bool algo_valid(cudnnConvolutionFwdAlgo_t a) {
    return int(a) >= 0 && int(a) < int(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
}

bool algo_runs(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

size_t workspace_bytes(const Problem& p, cudnnConvolutionFwdAlgo_t a) {
    switch (a) {
        case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:  // a table of input offsets per filter tap
            return align256(size_t(p.Cg) * p.R * p.S * 2 * sizeof(int32_t));
        case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:  // an explicit im2col matrix of one image and one group
            return align256(size_t(p.Cg) * p.R * p.S * size_t(p.Ho) * p.Wo * ty_size(p.type));
        default:
            return 0;
    }
}

// Element span of a 4-d tensor with positive strides: the offset of its last element plus one.
int64_t tensor_span(const cudnnTensorStruct* t) {
    return int64_t(t->n - 1) * t->ns + int64_t(t->c - 1) * t->cs + int64_t(t->h - 1) * t->hs +
           int64_t(t->w - 1) * t->ws + 1;
}

bool device_ok(const char* operand, const void* p, size_t bytes) {
    std::string why;
    if (sdxl_emu::device_range_ok(p, bytes, &why)) return true;
    std::ostringstream msg;
    msg << "cudnnConvolutionForward: operand " << operand << " (" << bytes << " bytes from " << p
        << ") is not valid device memory: " << why;
    sdxl_emu::report_device_error(700 /* cudaErrorIllegalAddress */, msg.str());
    t_last_error = msg.str();
    return false;
}

// The convolution itself (any algorithm): direct loops, innermost over output columns.
void run_forward(const Problem& p, float alpha, const void* x, const void* w, float beta, void* y) {
    const cudnnConvolutionStruct& cv = *p.conv;
    // cuDNN API (cudnn_graph, cudnnMathType_t): CUDNN_DEFAULT_MATH and the TENSOR_OP math types permit TF32
    // tensor-core math for FLOAT data on NVIDIA Ampere and later; only CUDNN_FMA_MATH excludes it. The fake
    // applies the permission (rounds FLOAT inputs to TF32) unless the math type is FMA.
    const bool tf32 = p.type == Ty::F32 && cv.math != CUDNN_FMA_MATH;
    auto in = [tf32](float v) { return tf32 ? round_tf32(v) : v; };

    // Filter as packed float [K][Cg][R][S]; CUDNN_CONVOLUTION flips it in both spatial dimensions
    // (cuDNN API, cudnnConvolutionMode_t: convolution vs cross-correlation).
    const bool flip = cv.mode == CUDNN_CONVOLUTION;
    std::vector<float> wf(size_t(p.K) * p.Cg * p.R * p.S);
    for (int k = 0; k < p.K; ++k)
        for (int c = 0; c < p.Cg; ++c)
            for (int r = 0; r < p.R; ++r)
                for (int s = 0; s < p.S; ++s) {
                    const int sr = flip ? p.R - 1 - r : r, ss = flip ? p.S - 1 - s : s;
                    const int64_t src = p.w->format == CUDNN_TENSOR_NCHW
                                            ? ((int64_t(k) * p.Cg + c) * p.R + sr) * p.S + ss   // KCRS
                                            : ((int64_t(k) * p.R + sr) * p.S + ss) * p.Cg + c;  // KRSC
                    wf[((size_t(k) * p.Cg + c) * p.R + r) * p.S + s] = in(load(w, src, p.type));
                }

    const cudnnTensorStruct& xd = *p.x;
    const cudnnTensorStruct& yd = *p.y;
    std::vector<float> xf(size_t(p.C) * p.H * p.W);  // one image, packed [C][H][W]
    std::vector<float> acc(size_t(p.Ho) * p.Wo);
    for (int n = 0; n < p.N; ++n) {
        for (int c = 0; c < p.C; ++c)
            for (int h = 0; h < p.H; ++h) {
                const int64_t base = int64_t(n) * xd.ns + int64_t(c) * xd.cs + int64_t(h) * xd.hs;
                float* dst = xf.data() + (size_t(c) * p.H + h) * p.W;
                for (int x_ = 0; x_ < p.W; ++x_) dst[x_] = in(load(x, base + int64_t(x_) * xd.ws, p.type));
            }
        for (int k = 0; k < p.K; ++k) {
            const int g = k / p.Kg;
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int c = 0; c < p.Cg; ++c) {
                const float* xc = xf.data() + size_t(g * p.Cg + c) * p.H * p.W;
                for (int r = 0; r < p.R; ++r) {
                    for (int s = 0; s < p.S; ++s) {
                        const float wv = wf[((size_t(k) * p.Cg + c) * p.R + r) * p.S + s];
                        // Input column of output column ow: ow * v + off; keep 0 <= it < W (zero padding elsewhere).
                        const int64_t off = int64_t(s) * cv.dil_w - cv.pad_w;
                        const int64_t ow_lo = off >= 0 ? 0 : (-off + cv.v - 1) / cv.v;
                        int64_t ow_hi = p.W - off <= 0 ? 0 : (p.W - off + cv.v - 1) / cv.v;
                        ow_hi = std::min<int64_t>(ow_hi, p.Wo);
                        if (ow_lo >= ow_hi) continue;
                        for (int oh = 0; oh < p.Ho; ++oh) {
                            const int64_t ih = int64_t(oh) * cv.u - cv.pad_h + int64_t(r) * cv.dil_h;
                            if (ih < 0 || ih >= p.H) continue;
                            const float* __restrict row = xc + ih * p.W;
                            float* __restrict a = acc.data() + size_t(oh) * p.Wo;
                            if (cv.v == 1) {
                                for (int64_t ow = ow_lo; ow < ow_hi; ++ow) a[ow] += wv * row[ow + off];
                            } else {
                                for (int64_t ow = ow_lo; ow < ow_hi; ++ow) a[ow] += wv * row[ow * cv.v + off];
                            }
                        }
                    }
                }
            }
            // y = alpha * conv + beta * y; cuDNN API ("Scaling Parameters"): with beta == 0 the output is not
            // read, so NaN or Inf already in y does not propagate.
            for (int oh = 0; oh < p.Ho; ++oh) {
                const int64_t base = int64_t(n) * yd.ns + int64_t(k) * yd.cs + int64_t(oh) * yd.hs;
                const float* a = acc.data() + size_t(oh) * p.Wo;
                for (int ow = 0; ow < p.Wo; ++ow) {
                    const int64_t i = base + int64_t(ow) * yd.ws;
                    const float v = beta == 0.0f ? alpha * a[ow] : alpha * a[ow] + beta * load(y, i, p.type);
                    store(y, i, p.type, v);
                }
            }
        }
    }
}

// A deterministic, plausible cost model for the algorithm list: time in ms at 100 TFLOP/s (tensor-op data) or
// 25 TFLOP/s (FLOAT), times a per-algorithm factor.
float model_time(const Problem& p, cudnnConvolutionFwdAlgo_t a) {
    const double flops = 2.0 * p.N * p.K * double(p.Ho) * p.Wo * p.Cg * p.R * p.S;
    const double rate = p.type == Ty::F32 ? 25e9 : 100e9;  // per millisecond
    double factor;
    switch (a) {
        case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: factor = 1.0; break;
        case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: factor = 1.35; break;
        case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: factor = 1.8; break;
        default: factor = 4.0 + int(a); break;
    }
    return float(0.002 + flops / rate * factor);
}

}  // namespace

extern "C" {

// cuDNN API (cudnn_graph, cudnnGetVersion()): CUDNN_VERSION = major * 10000 + minor * 100 + patch (9.x here).
size_t CUDNNWINAPI cudnnGetVersion(void) { return CUDNN_VERSION; }

// cuDNN API (cudnn_graph, cudnnGetErrorString()): the status enumerator's name.
const char* CUDNNWINAPI cudnnGetErrorString(cudnnStatus_t status) {
    switch (int(status)) {
#define SDXL_NAME(s) \
    case int(s): return #s;
        SDXL_NAME(CUDNN_STATUS_SUCCESS)
        SDXL_NAME(CUDNN_STATUS_NOT_INITIALIZED)
        SDXL_NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
        SDXL_NAME(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
        SDXL_NAME(CUDNN_STATUS_DEPRECATED)
        SDXL_NAME(CUDNN_STATUS_LICENSE_ERROR)
        SDXL_NAME(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
        SDXL_NAME(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
        SDXL_NAME(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
        SDXL_NAME(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
        SDXL_NAME(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
        SDXL_NAME(CUDNN_STATUS_INTERNAL_ERROR)
        SDXL_NAME(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
        SDXL_NAME(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
        SDXL_NAME(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
        SDXL_NAME(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
        SDXL_NAME(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
        SDXL_NAME(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
        SDXL_NAME(CUDNN_STATUS_EXECUTION_FAILED)
        SDXL_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
        SDXL_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
        SDXL_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
        SDXL_NAME(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef SDXL_NAME
        case 2001: return "CUDNN_STATUS_INVALID_VALUE";  // deprecated, the only alias with a value of its own
    }
    return "CUDNN_UNKNOWN_STATUS";
}

// cuDNN API (cudnn_graph, cudnnGetLastErrorString()): copies the latest error message, truncated, NUL-terminated.
void CUDNNWINAPI cudnnGetLastErrorString(char* message, size_t max_size) {
    if (!message || max_size == 0) return;
    const size_t n = std::min(max_size - 1, t_last_error.size());
    std::memcpy(message, t_last_error.data(), n);
    message[n] = '\0';
}

// cuDNN API (cudnn_graph, cudnnCreate()): BAD_PARAM for a NULL handle pointer.
cudnnStatus_t CUDNNWINAPI cudnnCreate(cudnnHandle_t* handle) {
    if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreate: handle is NULL");
    cudnnContext* ctx = new (std::nothrow) cudnnContext();
    if (!ctx) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    handles().add(ctx);
    *handle = ctx;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnDestroy(cudnnHandle_t handle) {
    if (!handles().remove(handle)) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnDestroy: not a live handle");
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

// cuDNN API (cudnn_graph, cudnnSetStream()): any stream; the emulated device is synchronous.
cudnnStatus_t CUDNNWINAPI cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    if (!live(handle)) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetStream: not a live handle");
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetStream(cudnnHandle_t handle, cudaStream_t* streamId) {
    if (!live(handle) || !streamId) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetStream: bad handle or NULL output");
    *streamId = handle->stream;
    return CUDNN_STATUS_SUCCESS;
}

// ---- tensor descriptors (cuDNN API, cudnn_ops) ----

cudnnStatus_t CUDNNWINAPI cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) {
    if (!tensorDesc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreateTensorDescriptor: NULL output");
    *tensorDesc = new (std::nothrow) cudnnTensorStruct();
    return *tensorDesc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

// cudnnDestroyTensorDescriptor(): a NULL descriptor is a no-op.
cudnnStatus_t CUDNNWINAPI cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
    delete tensorDesc;
    return CUDNN_STATUS_SUCCESS;
}

// Shared by both setters: dims must be positive (BAD_PARAM otherwise; the fake also rejects 0, which no cuDNN
// operation accepts), the data type valid, and the tensor no larger than 2 Giga-elements (cudnnSetTensor4d-
// Descriptor(): NOT_SUPPORTED "the total size of the tensor descriptor exceeds the maximum limit").
cudnnStatus_t set_tensor(cudnnTensorDescriptor_t d, cudnnDataType_t type, int n, int c, int h, int w, int ns, int cs,
                         int hs, int ws, const char* call) {
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, std::string(call) + ": NULL descriptor");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return fail(CUDNN_STATUS_BAD_PARAM, std::string(call) + ": dimensions must be positive");
    if (ns <= 0 || cs <= 0 || hs <= 0 || ws <= 0)
        return fail(CUDNN_STATUS_BAD_PARAM, std::string(call) + ": strides must be positive");
    const cudnnStatus_t s = check_type(type, call);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    const int64_t span = int64_t(n - 1) * ns + int64_t(c - 1) * cs + int64_t(h - 1) * hs + int64_t(w - 1) * ws + 1;
    if (int64_t(n) * c * h * w > INT_MAX || span > INT64_C(1) << 40)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, std::string(call) + ": the tensor exceeds 2 Giga-elements");
    d->set = true;
    d->type = type;
    d->n = n, d->c = c, d->h = h, d->w = w;
    d->ns = ns, d->cs = cs, d->hs = hs, d->ws = ws;
    return CUDNN_STATUS_SUCCESS;
}

// cudnnSetTensor4dDescriptor(): packed strides from the format - NCHW: w 1, h W, c H*W, n C*H*W; NHWC (logical
// dims still n, c, h, w): c 1, w C, h W*C, n H*W*C (cuDNN API, cudnn_graph, cudnnTensorFormat_t). BAD_PARAM for
// non-positive dims, an invalid format or data type.
cudnnStatus_t CUDNNWINAPI cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                                     cudnnDataType_t dataType, int n, int c, int h, int w) {
    const cudnnStatus_t s = check_format(format, "cudnnSetTensor4dDescriptor");
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetTensor4dDescriptor: dimensions must be positive");
    const int64_t chw = int64_t(c) * h * w;
    if (chw > INT_MAX) return fail(CUDNN_STATUS_NOT_SUPPORTED, "cudnnSetTensor4dDescriptor: tensor too large");
    if (format == CUDNN_TENSOR_NCHW)
        return set_tensor(tensorDesc, dataType, n, c, h, w, int(chw), h * w, w, 1, "cudnnSetTensor4dDescriptor");
    return set_tensor(tensorDesc, dataType, n, c, h, w, int(chw), 1, w * c, c, "cudnnSetTensor4dDescriptor");
}

// cudnnSetTensor4dDescriptorEx(): explicit strides. BAD_PARAM for non-positive dims, a non-positive stride (the
// fake also rejects 0: an output with a zero stride would be written twice) or an invalid data type.
cudnnStatus_t CUDNNWINAPI cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t dataType,
                                                       int n, int c, int h, int w, int nStride, int cStride,
                                                       int hStride, int wStride) {
    return set_tensor(tensorDesc, dataType, n, c, h, w, nStride, cStride, hStride, wStride,
                      "cudnnSetTensor4dDescriptorEx");
}

cudnnStatus_t CUDNNWINAPI cudnnGetTensor4dDescriptor(const cudnnTensorDescriptor_t tensorDesc,
                                                     cudnnDataType_t* dataType, int* n, int* c, int* h, int* w,
                                                     int* nStride, int* cStride, int* hStride, int* wStride) {
    if (!tensorDesc || !tensorDesc->set || !dataType || !n || !c || !h || !w || !nStride || !cStride || !hStride ||
        !wStride)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetTensor4dDescriptor: descriptor not set or NULL output");
    *dataType = tensorDesc->type;
    *n = tensorDesc->n, *c = tensorDesc->c, *h = tensorDesc->h, *w = tensorDesc->w;
    *nStride = tensorDesc->ns, *cStride = tensorDesc->cs, *hStride = tensorDesc->hs, *wStride = tensorDesc->ws;
    return CUDNN_STATUS_SUCCESS;
}

// ---- filter descriptors (cuDNN API, cudnn_ops) ----

cudnnStatus_t CUDNNWINAPI cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) {
    if (!filterDesc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreateFilterDescriptor: NULL output");
    *filterDesc = new (std::nothrow) cudnnFilterStruct();
    return *filterDesc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
    delete filterDesc;
    return CUDNN_STATUS_SUCCESS;
}

// cudnnSetFilter4dDescriptor(): k output maps, c input maps (per group), h x w taps; format NCHW = KCRS layout,
// NHWC = KRSC. BAD_PARAM for non-positive dims, an invalid format or data type.
cudnnStatus_t CUDNNWINAPI cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                                     cudnnTensorFormat_t format, int k, int c, int h, int w) {
    if (!filterDesc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetFilter4dDescriptor: NULL descriptor");
    if (k <= 0 || c <= 0 || h <= 0 || w <= 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetFilter4dDescriptor: dimensions must be positive");
    cudnnStatus_t s = check_format(format, "cudnnSetFilter4dDescriptor");
    if (s != CUDNN_STATUS_SUCCESS) return s;
    s = check_type(dataType, "cudnnSetFilter4dDescriptor");
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (int64_t(k) * c * h * w > INT_MAX)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "cudnnSetFilter4dDescriptor: the filter exceeds 2 Giga-elements");
    filterDesc->set = true;
    filterDesc->type = dataType;
    filterDesc->format = format;
    filterDesc->k = k, filterDesc->c = c, filterDesc->h = h, filterDesc->w = w;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetFilter4dDescriptor(const cudnnFilterDescriptor_t filterDesc,
                                                     cudnnDataType_t* dataType, cudnnTensorFormat_t* format, int* k,
                                                     int* c, int* h, int* w) {
    if (!filterDesc || !filterDesc->set || !dataType || !format || !k || !c || !h || !w)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetFilter4dDescriptor: descriptor not set or NULL output");
    *dataType = filterDesc->type;
    *format = filterDesc->format;
    *k = filterDesc->k, *c = filterDesc->c, *h = filterDesc->h, *w = filterDesc->w;
    return CUDNN_STATUS_SUCCESS;
}

// ---- convolution descriptors (cuDNN API, cudnn_cnn) ----

cudnnStatus_t CUDNNWINAPI cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) {
    if (!convDesc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreateConvolutionDescriptor: NULL output");
    *convDesc = new (std::nothrow) cudnnConvolutionStruct();
    return *convDesc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
    delete convDesc;
    return CUDNN_STATUS_SUCCESS;
}

// cudnnSetConvolution2dDescriptor(): BAD_PARAM when the descriptor is NULL, a padding is negative, a stride or a
// dilation is not positive, or the mode or compute type is an invalid enumerant. A valid compute type other than
// FLOAT is accepted here and is NOT_SUPPORTED when a convolution is run.
cudnnStatus_t CUDNNWINAPI cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w,
                                                          int u, int v, int dilation_h, int dilation_w,
                                                          cudnnConvolutionMode_t mode, cudnnDataType_t computeType) {
    if (!convDesc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolution2dDescriptor: NULL descriptor");
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
        return fail(CUDNN_STATUS_BAD_PARAM,
                    "cudnnSetConvolution2dDescriptor: negative padding or non-positive stride / dilation");
    if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolution2dDescriptor: invalid mode");
    if (int(computeType) < int(CUDNN_DATA_FLOAT) || int(computeType) > int(CUDNN_DATA_COMPLEX_FP64))
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolution2dDescriptor: invalid compute type");
    convDesc->set = true;
    convDesc->pad_h = pad_h, convDesc->pad_w = pad_w, convDesc->u = u, convDesc->v = v;
    convDesc->dil_h = dilation_h, convDesc->dil_w = dilation_w;
    convDesc->mode = mode;
    convDesc->compute = computeType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolution2dDescriptor(const cudnnConvolutionDescriptor_t convDesc, int* pad_h,
                                                          int* pad_w, int* u, int* v, int* dilation_h,
                                                          int* dilation_w, cudnnConvolutionMode_t* mode,
                                                          cudnnDataType_t* computeType) {
    if (!convDesc || !convDesc->set || !pad_h || !pad_w || !u || !v || !dilation_h || !dilation_w || !mode ||
        !computeType)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolution2dDescriptor: descriptor not set or NULL output");
    *pad_h = convDesc->pad_h, *pad_w = convDesc->pad_w, *u = convDesc->u, *v = convDesc->v;
    *dilation_h = convDesc->dil_h, *dilation_w = convDesc->dil_w;
    *mode = convDesc->mode;
    *computeType = convDesc->compute;
    return CUDNN_STATUS_SUCCESS;
}

// cudnnSetConvolutionMathType(): BAD_PARAM for an invalid enumerant.
cudnnStatus_t CUDNNWINAPI cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                                      cudnnMathType_t mathType) {
    if (!convDesc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType: NULL descriptor");
    if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
        mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && mathType != CUDNN_FMA_MATH)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType: invalid math type");
    convDesc->math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                                      cudnnMathType_t* mathType) {
    if (!convDesc || !mathType) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionMathType: NULL argument");
    *mathType = convDesc->math;
    return CUDNN_STATUS_SUCCESS;
}

// cudnnSetConvolutionGroupCount(): BAD_PARAM for a count below 1.
cudnnStatus_t CUDNNWINAPI cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
    if (!convDesc || groupCount < 1)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionGroupCount: NULL descriptor or count < 1");
    convDesc->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int* groupCount) {
    if (!convDesc || !groupCount) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionGroupCount: NULL argument");
    *groupCount = convDesc->groups;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                                const cudnnTensorDescriptor_t inputTensorDesc,
                                                                const cudnnFilterDescriptor_t filterDesc, int* n,
                                                                int* c, int* h, int* w) {
    if (!n || !c || !h || !w) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolution2dForwardOutputDim: NULL output");
    return output_dim(convDesc, inputTensorDesc, filterDesc, n, c, h, w);
}

// ---- algorithms ----

// cudnnGetConvolutionForwardAlgorithmMaxCount(): the number of cudnnConvolutionFwdAlgo_t values.
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
    if (!live(handle) || !count)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionForwardAlgorithmMaxCount: bad handle or NULL count");
    *count = int(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    return CUDNN_STATUS_SUCCESS;
}

// cudnnGetConvolutionForwardAlgorithm_v7(): up to requestedAlgoCount entries, best first (BAD_PARAM for a count
// below 1, NULL outputs or an invalid problem). The fake lists all eight algorithms: IMPLICIT_PRECOMP_GEMM
// (workspace), IMPLICIT_GEMM (none) and GEMM (workspace) run; DIRECT, FFT, FFT_TILING, WINOGRAD and
// WINOGRAD_NONFUSED have status NOT_SUPPORTED and come last. For a valid problem the fake does not run (see
// analyse) every entry is NOT_SUPPORTED. mathType: TENSOR_OP_MATH for HALF / BFLOAT16 data, DEFAULT_MATH for FLOAT.
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle,
                                                                 const cudnnTensorDescriptor_t srcDesc,
                                                                 const cudnnFilterDescriptor_t filterDesc,
                                                                 const cudnnConvolutionDescriptor_t convDesc,
                                                                 const cudnnTensorDescriptor_t destDesc,
                                                                 const int requestedAlgoCount,
                                                                 int* returnedAlgoCount,
                                                                 cudnnConvolutionFwdAlgoPerf_t* perfResults) {
    if (!live(handle)) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionForwardAlgorithm_v7: bad handle");
    if (requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults)
        return fail(CUDNN_STATUS_BAD_PARAM,
                    "cudnnGetConvolutionForwardAlgorithm_v7: requestedAlgoCount < 1 or NULL output");
    Problem p;
    const cudnnStatus_t s = analyse(srcDesc, filterDesc, convDesc, destDesc, &p);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    std::vector<cudnnConvolutionFwdAlgoPerf_t> list;
    for (int a = 0; a < int(CUDNN_CONVOLUTION_FWD_ALGO_COUNT); ++a) {
        const auto algo = cudnnConvolutionFwdAlgo_t(a);
        cudnnConvolutionFwdAlgoPerf_t e;
        std::memset(&e, 0, sizeof e);
        e.algo = algo;
        const bool runs = p.supported && algo_runs(algo);
        e.status = runs ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
        e.time = model_time(p, algo);
        e.memory = runs ? workspace_bytes(p, algo) : 0;
        e.determinism = CUDNN_DETERMINISTIC;
        e.mathType = p.type == Ty::F32 ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH;
        list.push_back(e);
    }
    std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
        if ((a.status == CUDNN_STATUS_SUCCESS) != (b.status == CUDNN_STATUS_SUCCESS))
            return a.status == CUDNN_STATUS_SUCCESS;
        return a.time < b.time;
    });
    const int count = std::min<int>(requestedAlgoCount, int(list.size()));
    for (int i = 0; i < count; ++i) perfResults[i] = list[size_t(i)];
    *returnedAlgoCount = count;
    return CUDNN_STATUS_SUCCESS;
}

// cudnnGetConvolutionForwardWorkspaceSize(): the workspace an algorithm needs for the problem; BAD_PARAM for an
// invalid problem or algorithm enumerant, NOT_SUPPORTED for an algorithm (or problem) the fake does not run.
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle,
                                                                  const cudnnTensorDescriptor_t xDesc,
                                                                  const cudnnFilterDescriptor_t wDesc,
                                                                  const cudnnConvolutionDescriptor_t convDesc,
                                                                  const cudnnTensorDescriptor_t yDesc,
                                                                  cudnnConvolutionFwdAlgo_t algo,
                                                                  size_t* sizeInBytes) {
    if (!live(handle) || !sizeInBytes)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionForwardWorkspaceSize: bad handle or NULL output");
    Problem p;
    const cudnnStatus_t s = analyse(xDesc, wDesc, convDesc, yDesc, &p);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (!algo_valid(algo))
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionForwardWorkspaceSize: invalid algorithm");
    if (!p.supported) return fail(p.unsupported_status, p.unsupported_why);
    if (!algo_runs(algo))
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulator's cuDNN does not implement algorithm " +
                                                    std::to_string(int(algo)));
    *sizeInBytes = workspace_bytes(p, algo);
    return CUDNN_STATUS_SUCCESS;
}

// cudnnConvolutionForward(): y = alpha * conv(x, w) + beta * y. Returns, in this order: BAD_PARAM for a NULL
// argument (handle, descriptors, x, w, y, alpha, beta) or an invalid problem (analyse); NOT_SUPPORTED for a
// problem or algorithm the fake does not run; BAD_PARAM when the algorithm needs a workspace and workSpace is NULL
// or workSpaceSizeInBytes is smaller than cudnnGetConvolutionForwardWorkspaceSize() says; EXECUTION_FAILED when
// x, w, y or the workspace is not valid device memory over the range the convolution touches. alpha and beta are
// host floats for FLOAT, HALF and BFLOAT16 data (cuDNN API, "Scaling Parameters").
cudnnStatus_t CUDNNWINAPI cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha,
                                                  const cudnnTensorDescriptor_t xDesc, const void* x,
                                                  const cudnnFilterDescriptor_t wDesc, const void* w,
                                                  const cudnnConvolutionDescriptor_t convDesc,
                                                  cudnnConvolutionFwdAlgo_t algo, void* workSpace,
                                                  size_t workSpaceSizeInBytes, const void* beta,
                                                  const cudnnTensorDescriptor_t yDesc, void* y) {
    if (!live(handle)) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnConvolutionForward: bad handle");
    if (!alpha || !beta || !x || !w || !y)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnConvolutionForward: NULL alpha, beta, x, w or y");
    Problem p;
    const cudnnStatus_t s = analyse(xDesc, wDesc, convDesc, yDesc, &p);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (!algo_valid(algo)) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnConvolutionForward: invalid algorithm");
    if (!p.supported) return fail(p.unsupported_status, p.unsupported_why);
    if (!algo_runs(algo))
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulator's cuDNN does not implement algorithm " +
                                                    std::to_string(int(algo)));
    const size_t need = workspace_bytes(p, algo);
    if (need > 0 && (!workSpace || workSpaceSizeInBytes < need))
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnConvolutionForward: algorithm " + std::to_string(int(algo)) +
                                                " needs a " + std::to_string(need) + "-byte workspace, got " +
                                                std::to_string(workSpace ? workSpaceSizeInBytes : 0));
    const size_t es = ty_size(p.type);
    const size_t w_bytes = size_t(p.K) * p.Cg * p.R * p.S * es;
    if (!device_ok("x", x, size_t(tensor_span(p.x)) * es) || !device_ok("w", w, w_bytes) ||
        !device_ok("y", y, size_t(tensor_span(p.y)) * es) || (need > 0 && !device_ok("workSpace", workSpace, need)))
        return CUDNN_STATUS_EXECUTION_FAILED;
    float a, b;
    std::memcpy(&a, alpha, 4);
    std::memcpy(&b, beta, 4);
    // Run now, or recorded while the handle's stream captures a graph: the node keeps copies of the descriptors
    // (the caller may destroy them right after the call) and of the host scalars.
    struct Captured {
        cudnnTensorStruct xd, yd;
        cudnnFilterStruct wd;
        cudnnConvolutionStruct cd;
        Problem p;
    };
    try {
        auto c = std::make_shared<Captured>(Captured{*p.x, *p.y, *p.w, *p.conv, p});
        c->p.x = &c->xd;
        c->p.y = &c->yd;
        c->p.w = &c->wd;
        c->p.conv = &c->cd;
        const cudaError_t e = sdxl_emu::enqueue(handle->stream, "cudnnConvolutionForward", [c, a, x, w, b, y] {
            run_forward(c->p, a, x, w, b, y);
            return cudaSuccess;
        });
        if (e != cudaSuccess)
            return fail(CUDNN_STATUS_EXECUTION_FAILED, std::string("cudnnConvolutionForward: ") + cudaGetErrorName(e));
    } catch (const std::bad_alloc&) {
        return fail(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED, "cudnnConvolutionForward: out of memory");
    }
    return CUDNN_STATUS_SUCCESS;
}

// cudnnFindConvolutionForwardAlgorithmEx(): "executes all applicable algorithms" on the caller's buffers and
// returns up to requestedAlgoCount results sorted by execution time (cudnn_cnn.h). y is overwritten with the
// convolution (alpha 1, beta 0), as every run of a real algorithm writes it. BAD_PARAM for a NULL handle, buffer
// or output, a count below 1 or an invalid problem; EXECUTION_FAILED when x, w, y or the workspace is not device
// memory over its range, or when the handle's stream is capturing a graph (benchmarking synchronises the device).
// The fake's times are the deterministic cost model of cudnnGetConvolutionForwardAlgorithm_v7, not measurements;
// algorithms it does not run, or whose workspace exceeds workSpaceSizeInBytes (the documentation does not name
// that status; the backend only takes SUCCESS entries), are NOT_SUPPORTED and come last.
cudnnStatus_t CUDNNWINAPI cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x, const cudnnFilterDescriptor_t wDesc,
    const void* w, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t yDesc, void* y,
    const int requestedAlgoCount, int* returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t* perfResults,
    void* workSpace, size_t workSpaceSizeInBytes) {
    const char* call = "cudnnFindConvolutionForwardAlgorithmEx";
    if (!live(handle)) return fail(CUDNN_STATUS_BAD_PARAM, std::string(call) + ": bad handle");
    if (!x || !w || !y || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults)
        return fail(CUDNN_STATUS_BAD_PARAM,
                    std::string(call) + ": NULL x, w, y or output, or requestedAlgoCount < 1");
    Problem p;
    const cudnnStatus_t s = analyse(xDesc, wDesc, convDesc, yDesc, &p);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (sdxl_emu::stream_capturing(handle->stream))
        return fail(CUDNN_STATUS_EXECUTION_FAILED, std::string(call) + ": the handle's stream is capturing a graph");
    const size_t es = ty_size(p.type);
    const size_t w_bytes = size_t(p.K) * p.Cg * p.R * p.S * es;
    if (!device_ok("x", x, size_t(tensor_span(p.x)) * es) || !device_ok("w", w, w_bytes) ||
        !device_ok("y", y, size_t(tensor_span(p.y)) * es) ||
        (workSpaceSizeInBytes > 0 && (!workSpace || !device_ok("workSpace", workSpace, workSpaceSizeInBytes))))
        return CUDNN_STATUS_EXECUTION_FAILED;
    std::vector<cudnnConvolutionFwdAlgoPerf_t> list;
    bool ran = false;
    for (int a = 0; a < int(CUDNN_CONVOLUTION_FWD_ALGO_COUNT); ++a) {
        const auto algo = cudnnConvolutionFwdAlgo_t(a);
        cudnnConvolutionFwdAlgoPerf_t e;
        std::memset(&e, 0, sizeof e);
        e.algo = algo;
        const bool runs = p.supported && algo_runs(algo) && workspace_bytes(p, algo) <= workSpaceSizeInBytes;
        e.status = runs ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
        e.time = model_time(p, algo);
        e.memory = runs ? workspace_bytes(p, algo) : 0;
        e.determinism = CUDNN_DETERMINISTIC;
        e.mathType = p.type == Ty::F32 ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH;
        list.push_back(e);
        ran = ran || runs;
    }
    if (ran) {
        try {
            run_forward(p, 1.0f, x, w, 0.0f, y);  // every algorithm computes the same numbers here
        } catch (const std::bad_alloc&) {
            return fail(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED, std::string(call) + ": out of memory");
        }
    }
    std::stable_sort(list.begin(), list.end(), [](const auto& l, const auto& r) {
        if ((l.status == CUDNN_STATUS_SUCCESS) != (r.status == CUDNN_STATUS_SUCCESS))
            return l.status == CUDNN_STATUS_SUCCESS;
        return l.time < r.time;
    });
    const int count = std::min<int>(requestedAlgoCount, int(list.size()));
    for (int i = 0; i < count; ++i) perfResults[i] = list[size_t(i)];
    *returnedAlgoCount = count;
    return CUDNN_STATUS_SUCCESS;
}

}  // extern "C"
