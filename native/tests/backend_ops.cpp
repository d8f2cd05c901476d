// The backend-vs-CPU op parity runner (in the style of ggml's test-backend-ops): every op of ops/ at SDXL's
// real shapes (channels 320/640/1280, head_dim 64, context 77 x 2048, 32 groups, 128x128 latents) and at
// small odd shapes, run on the CPU backend (the reference) and on CUDA in F32, F16 and BF16, compared by
// normalised mean squared error  NMSE = sum((gpu - cpu)^2) / sum(cpu^2)  against one tolerance per op and
// dtype, each with its reason. Reduced-precision cases feed the CPU the same rounded inputs, so only the
// computation is compared.
//
//   sdxl_backend_ops                    correctness, all ops and dtypes
//   sdxl_backend_ops --perf             the same cases timed on the device (median of 10 after 3 warm-ups)
//   sdxl_backend_ops --op conv2d --dtype f16 --small
//   sdxl_backend_ops --emulator          the cases that fit the CPU SIMT emulator's speed: every small and
//                                        mid-size case, and the real SDXL shapes below a work limit
//   sdxl_backend_ops --versions          driver/runtime versions and the cuBLAS/cuDNN actually loaded
//   sdxl_backend_ops --cpu-self-check --small   every case's inputs and call checked on the CPU alone (F32,
//                                               the "device" side being the CPU too: NMSE must be 0)
//
// Without a usable CUDA device it prints why and exits 0 (CI compiles and runs it; the GPU machine checks).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/tensor.h"
#include "ops/ops.h"

#if defined(SDXL_WITH_CUDA)
#include <cuda_runtime.h>
#endif

using namespace sdxl;

namespace {

struct Input {
    Shape shape;
    float lo = -1.0f, hi = 1.0f;  // uniform values; integer-valued inputs set `ids`
    bool i64 = false;             // an I64 input (e.g. timesteps), values in [lo, hi) rounded down
    bool keep_f32 = false;        // stays F32 whatever the case dtype (e.g. a mask, timesteps)
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Case {
    std::string op;       // ops/ name, for --op
    std::string label;    // shapes, for the report
    std::vector<Input> inputs;
    OpFn run;
    double tol_f32, tol_f16, tol_bf16;  // max NMSE per dtype; < 0: dtype not applicable
    const char* reason;                 // why these tolerances
    bool small;                         // an odd small shape (always run) vs a real SDXL shape
};

// Tolerances (NMSE). Exact data movement: 0 in every dtype (the CPU sees the same rounded values).
// F32 math: 1e-7 (ggml's default; different exp/erf and summation order). F16/BF16 results are rounded to
// the dtype: one rounding of the output alone is NMSE ~ 2^-22 / 3 (f16) and 2^-16 / 3 (bf16); reductions
// in fp32 add little. GEMM/conv/attention in reduced precision: 5e-4 (DESIGN.md) for accumulated rounding.
constexpr double kExact = 0.0;
constexpr double kF32Math = 1e-7;
constexpr double kF16Out = 1e-6, kBF16Out = 5e-5;
constexpr double kReduced = 5e-4;

std::vector<Case> build_cases() {
    std::vector<Case> c;
    auto unary = [&](const std::string& op, Tensor (*f)(const Tensor&), Shape s, bool small) {
        c.push_back({op, shape_str(s), {{s, -4.0f, 4.0f}}, [f](const std::vector<Tensor>& in) { return f(in[0]); },
                     kF32Math, kF16Out, kBF16Out, "elementwise transcendental: expf/erff and one output rounding",
                     small});
    };
    for (auto [s, small] : {std::pair<Shape, bool>{{2, 640, 64, 64}, false}, {{2, 640, 16, 16}, false}, {{7}, true}, {{3, 5, 11}, true}}) {
        unary("silu", ops::silu, s, small);
        unary("gelu", ops::gelu, s, small);
        unary("gelu_tanh", ops::gelu_tanh, s, small);
        unary("quick_gelu", ops::quick_gelu, s, small);
    }
    // binary ops with broadcasting (bias [1, C, 1, 1], time embedding [B, C, 1, 1], scalar-like)
    auto binary = [&](const std::string& op, Tensor (*f)(const Tensor&, const Tensor&), Shape a, Shape b, bool small) {
        c.push_back({op, shape_str(a) + " (op) " + shape_str(b), {{a}, {b}},
                     [f](const std::vector<Tensor>& in) { return f(in[0], in[1]); }, kExact, kF16Out, kBF16Out,
                     "one IEEE add/sub/mul per element: exact in F32; F16/BF16 round the result once", small});
    };
    for (auto* name : {"add", "sub", "mul"}) {
        auto f = std::string(name) == "add" ? ops::add : std::string(name) == "sub" ? ops::sub : ops::mul;
        binary(name, f, {2, 320, 128, 128}, {1, 320, 1, 1}, false);
        binary(name, f, {2, 1280, 32, 32}, {2, 1280, 1, 1}, false);
        binary(name, f, {2, 320, 32, 32}, {1, 320, 1, 1}, false);
        binary(name, f, {3, 1, 5}, {4, 1}, true);
        binary(name, f, {2, 3, 7, 5}, {2, 3, 7, 5}, true);
        // the 16-byte pack paths: both contiguous, and a row [C] broadcast over [N, L, C] (transformer widths)
        binary(name, f, {2, 256, 640}, {2, 256, 640}, false);
        binary(name, f, {2, 256, 640}, {640}, false);
        binary(name, f, {3, 16}, {16}, true);
    }
    // a view starting one element into its storage: not 16-byte aligned, so the general kernel runs
    c.push_back({"add", "[17] narrowed to [1:17] (unaligned) + [16]", {{{17}}, {{16}}},
                 [](const std::vector<Tensor>& in) { return ops::add(in[0].narrow(0, 1, 16), in[1]); }, kExact, kF16Out,
                 kBF16Out, "one IEEE add per element: exact in F32; F16/BF16 round the result once", true});
    for (auto [s, small] : {std::pair<Shape, bool>{{2, 320, 128, 128}, false}, {{2, 320, 32, 32}, false}, {{13}, true}}) {
        c.push_back({"scale", shape_str(s), {{s}}, [](const std::vector<Tensor>& in) { return ops::scale(in[0], 0.18215f, -0.5f); },
                     kF32Math, kF16Out, kBF16Out, "alpha * x + beta: FMA vs separate rounding", small});
    }
    // GEGLU (feed-forward of every transformer block): [.., 2 * inner] -> [.., inner]
    for (auto [s, small] : {std::pair<Shape, bool>{{2, 4096, 2 * 2560}, false}, {{2, 128, 2 * 2560}, false}, {{3, 2 * 7}, true}}) {
        c.push_back({"geglu", shape_str(s), {{s, -3.0f, 3.0f}}, [](const std::vector<Tensor>& in) { return ops::geglu(in[0]); },
                     kF32Math, kF16Out * 4, kBF16Out * 4, "a * gelu(b): erf and two roundings", small});
    }
    // softmax over the last dim (attention probabilities: 4096 x 77 cross-attention rows)
    for (auto [s, small] : {std::pair<Shape, bool>{{20, 4096, 77}, false}, {{20, 256, 77}, false}, {{3, 5}, true}, {{2, 1000}, true}}) {
        c.push_back({"softmax", shape_str(s), {{s, -8.0f, 8.0f}}, [](const std::vector<Tensor>& in) { return ops::softmax(in[0]); },
                     kF32Math, kF16Out * 4, kBF16Out * 4, "max-subtracted exp and an fp32 sum per row", small});
    }
    // group norm: SDXL's 32 groups at every level; odd: 3 groups of 2 channels
    struct GN { Shape s; int groups; bool small; };
    for (const GN& g : {GN{{2, 320, 128, 128}, 32, false}, GN{{2, 1280, 32, 32}, 32, false}, GN{{2, 320, 32, 32}, 32, false},
                        GN{{1, 6, 5, 3}, 3, true}}) {
        const int64_t C = g.s[1];
        const int groups = g.groups;
        c.push_back({"group_norm", shape_str(g.s) + " groups " + std::to_string(groups), {{g.s, -2.0f, 3.0f}, {{C}, 0.5f, 1.5f}, {{C}}},
                     [groups](const std::vector<Tensor>& in) { return ops::group_norm(in[0], groups, in[1], in[2], 1e-5f); },
                     1e-7, kF16Out * 8, kBF16Out * 8, "mean/variance reductions in fp32 in another order", g.small});
    }
    // group norm + SiLU (every ResNet block, conv_norm_out): a small odd case, a 32x32 level, the real 128x128
    for (const GN& g : {GN{{2, 320, 128, 128}, 32, false}, GN{{2, 320, 32, 32}, 32, false}, GN{{1, 6, 5, 3}, 3, true}}) {
        const int64_t C = g.s[1];
        const int groups = g.groups;
        c.push_back({"group_norm_silu", shape_str(g.s) + " groups " + std::to_string(groups),
                     {{g.s, -2.0f, 3.0f}, {{C}, 0.5f, 1.5f}, {{C}}},
                     [groups](const std::vector<Tensor>& in) { return ops::group_norm_silu(in[0], groups, in[1], in[2], 1e-5f); },
                     1e-7, kF16Out * 8, kBF16Out * 8,
                     "group_norm's fp32 reductions in another order, then expf; one output rounding", g.small});
    }
    // layer norm over the last dim: transformer hidden 640/1280, CLIP 768/1280
    for (auto [s, small] : {std::pair<Shape, bool>{{2, 4096, 640}, false}, {{2, 256, 640}, false}, {{2, 77, 1280}, false},
                            {{3, 7}, true}}) {
        const int64_t C = s.back();
        c.push_back({"layer_norm", shape_str(s), {{s, -2.0f, 3.0f}, {{C}, 0.5f, 1.5f}, {{C}}},
                     [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0], in[1], in[2], 1e-5f); },
                     1e-7, kF16Out * 8, kBF16Out * 8, "mean/variance reductions in fp32 in another order", small});
    }
    // linear: attention projections, GEGLU proj, the 2048-wide context, odd K/N
    struct LN { Shape x; int64_t n; bool small; };
    for (const LN& l : {LN{{2, 4096, 640}, 640, false}, LN{{2, 1024, 1280}, 10240, false}, LN{{2, 77, 2048}, 640, false},
                        LN{{2, 256, 640}, 640, false}, LN{{2, 16, 1280}, 10240, false},
                        LN{{3, 5, 7}, 11, true}, LN{{1, 1}, 3, true}}) {
        const int64_t K = l.x.back();
        const float ws = 1.0f / std::sqrt(float(K));
        c.push_back({"linear", shape_str(l.x) + " x [" + std::to_string(l.n) + ", " + std::to_string(K) + "]^T",
                     {{l.x}, {{l.n, K}, -ws, ws}, {{l.n}}},
                     [](const std::vector<Tensor>& in) { return ops::linear(in[0], in[1], in[2]); },
                     1e-7, kReduced, kReduced, "GEMM: other summation order (F32, TF32 off); fp16/bf16 operands", l.small});
    }
    // linear + bias + residual in one call (cuBLASLt's bias epilogue with C = the residual, or the cuBLAS fallback):
    // attention out-projection (640, 1280) and the feed-forward's down projection (5120 -> 1280) of SDXL's
    // transformer blocks, mid-size versions of them, and odd small shapes; `perm`: the residual is a permuted view
    // (stored [N, ..., B], seen as [B, ..., N]), so its strides fit no GEMM layout and it is copied first.
    struct LR { Shape x; int64_t n; bool bias, perm, small; };
    for (const LR& l : {LR{{2, 4096, 640}, 640, true, false, false}, LR{{2, 1024, 5120}, 1280, true, false, false},
                        LR{{2, 1024, 1280}, 5120, true, true, false}, LR{{2, 256, 640}, 640, true, false, false},
                        LR{{2, 32, 5120}, 1280, true, false, false}, LR{{2, 16, 1280}, 5120, true, true, false},
                        LR{{3, 5, 7}, 11, true, true, true}, LR{{2, 3, 9}, 5, false, false, true},
                        LR{{1, 1}, 3, true, false, true}}) {
        const int64_t K = l.x.back();
        const float ws = 1.0f / std::sqrt(float(K));
        Shape rs = l.x;
        rs.back() = l.n;
        if (l.perm) std::reverse(rs.begin(), rs.end());
        const bool bias = l.bias, perm = l.perm;
        const int rank = int(rs.size());
        c.push_back({"linear", shape_str(l.x) + " x [" + std::to_string(l.n) + ", " + std::to_string(K) + "]^T" +
                                   (bias ? " + b" : "") + (perm ? " + permuted residual" : " + residual"),
                     {{l.x}, {{l.n, K}, -ws, ws}, {{l.n}}, {rs}},
                     [bias, perm, rank](const std::vector<Tensor>& in) {
                         std::vector<int> dims(static_cast<size_t>(rank), 0);
                         for (int i = 0; i < rank; ++i) dims[size_t(i)] = perm ? rank - 1 - i : i;
                         return ops::linear(in[0], in[1], bias ? in[2] : Tensor(), in[3].permute(dims));
                     },
                     1e-7, kReduced, kReduced,
                     "GEMM + bias + residual: other summation order; fp16/bf16 operands, one output rounding", l.small});
    }
    // batched matmul (attention scores and values in the simple path)
    struct MM { Shape a, b; bool small; };
    for (const MM& m : {MM{{20, 1024, 64}, {20, 64, 77}, false}, MM{{20, 128, 64}, {20, 64, 77}, false},
                        MM{{3, 5, 7}, {1, 7, 4}, true}}) {
        c.push_back({"matmul", shape_str(m.a) + " @ " + shape_str(m.b), {{m.a}, {m.b}},
                     [](const std::vector<Tensor>& in) { return ops::matmul(in[0], in[1]); }, 1e-7, kReduced, kReduced,
                     "GEMM: other summation order; fp16/bf16 operands", m.small});
    }
    // conv2d: conv_in, a 3x3 resnet conv, a stride-2 downsampler, a 1x1 shortcut, odd shapes
    struct CV { Shape x, w; int stride, pad; bool small; };
    for (const CV& v : {CV{{2, 4, 128, 128}, {320, 4, 3, 3}, 1, 1, false}, CV{{2, 640, 64, 64}, {640, 640, 3, 3}, 1, 1, false},
                        CV{{2, 320, 128, 128}, {320, 320, 3, 3}, 2, 1, false}, CV{{2, 640, 32, 32}, {1280, 640, 1, 1}, 1, 0, false},
                        CV{{2, 640, 8, 8}, {640, 640, 3, 3}, 1, 1, false}, CV{{2, 320, 16, 16}, {320, 320, 3, 3}, 2, 1, false},
                        CV{{2, 640, 8, 8}, {1280, 640, 1, 1}, 1, 0, false},
                        CV{{1, 3, 9, 7}, {5, 3, 3, 3}, 1, 1, true}, CV{{2, 2, 5, 6}, {3, 2, 3, 3}, 2, 0, true}}) {
        const int stride = v.stride, pad = v.pad;
        const float ws = 1.0f / std::sqrt(float(v.w[1] * v.w[2] * v.w[3]));
        c.push_back({"conv2d", shape_str(v.x) + " * " + shape_str(v.w) + " s" + std::to_string(stride) + " p" + std::to_string(pad),
                     {{v.x}, {v.w, -ws, ws}, {{v.w[0]}}},
                     [stride, pad](const std::vector<Tensor>& in) { return ops::conv2d(in[0], in[1], in[2], stride, pad); },
                     1e-7, kReduced, kReduced, "cuDNN algorithms sum in other orders; fp16/bf16 operands", v.small});
    }
    // conv2d with fused epilogues: ResNet conv1 + time embedding [N, O], conv2 + residual (contiguous, and a
    // transposed view), both, an odd small case
    struct CF { Shape x, w; bool sample_bias, residual, transposed_residual, small; };
    for (const CF& v : {CF{{2, 640, 8, 8}, {640, 640, 3, 3}, true, false, false, false},
                        CF{{2, 320, 8, 8}, {320, 320, 3, 3}, false, true, false, false},
                        CF{{2, 320, 8, 8}, {640, 320, 3, 3}, true, true, true, false},
                        CF{{1, 3, 9, 7}, {5, 3, 3, 3}, true, true, false, true},
                        CF{{2, 2, 5, 6}, {3, 2, 3, 3}, false, true, true, true}}) {
        const int64_t N = v.x[0], O = v.w[0];
        const Shape out{N, O, v.x[2], v.x[3]};
        const Shape res_shape = v.transposed_residual ? Shape{N, O, v.x[3], v.x[2]} : out;
        const float ws = 1.0f / std::sqrt(float(v.w[1] * v.w[2] * v.w[3]));
        const bool sb = v.sample_bias, res = v.residual, tr = v.transposed_residual;
        c.push_back({"conv2d_fused",
                     shape_str(v.x) + " * " + shape_str(v.w) + (sb ? " + time emb" : "") +
                         (res ? (tr ? " + transposed residual" : " + residual") : ""),
                     {{v.x}, {v.w, -ws, ws}, {{O}}, {{N, O}}, {res_shape}},
                     [sb, res, tr](const std::vector<Tensor>& in) {
                         const Tensor r = !res ? Tensor() : tr ? in[4].transpose(2, 3) : in[4];
                         return ops::conv2d_fused(in[0], in[1], in[2], 1, 1, sb ? in[3] : Tensor(), r);
                     },
                     1e-7, kReduced, kReduced,
                     "cuDNN sums in other orders onto the pre-filled epilogue (one rounding instead of three)", v.small});
    }
    // attention: self at 64x64 and 32x32 latents (SDXL levels), cross with 77 text tokens, CLIP causal with a
    // key mask, and an odd head size (simple path)
    struct AT { Shape q, kv; bool causal, mask; bool small; };
    for (const AT& a : {AT{{2, 10, 4096, 64}, {2, 10, 4096, 64}, false, false, false}, AT{{2, 20, 1024, 64}, {2, 20, 77, 64}, false, false, false},
                        AT{{2, 20, 1024, 64}, {2, 20, 154, 64}, false, false, false}, AT{{1, 12, 77, 64}, {1, 12, 77, 64}, true, true, false},
                        AT{{1, 1, 4096, 512}, {1, 1, 4096, 512}, false, false, false},  // VAE mid-block, 512 px
                        AT{{2, 10, 256, 64}, {2, 10, 256, 64}, false, false, false}, AT{{2, 20, 128, 64}, {2, 20, 77, 64}, false, false, false},
                        AT{{2, 20, 128, 64}, {2, 20, 154, 64}, false, false, false}, AT{{1, 1, 256, 512}, {1, 1, 256, 512}, false, false, false},
                        AT{{1, 3, 33, 40}, {1, 3, 17, 40}, false, false, true}, AT{{2, 2, 5, 64}, {2, 2, 5, 64}, true, false, true},
                        AT{{1, 2, 9, 96}, {1, 2, 13, 96}, false, false, true}}) {
        std::vector<Input> in = {{a.q}, {a.kv}, {a.kv}};
        if (a.mask) in.push_back({{a.kv[0], a.kv[2]}, 0.0f, 2.0f, true, true});
        const bool causal = a.causal, mask = a.mask;
        c.push_back({"attention", "q " + shape_str(a.q) + " kv " + shape_str(a.kv) + (causal ? " causal" : "") + (mask ? " masked" : ""),
                     in,
                     [causal, mask](const std::vector<Tensor>& t) {
                         return ops::attention(t[0], t[1], t[2], mask ? t[3] : Tensor(), causal, 0.0f);
                     },
                     1e-7, kReduced, kReduced, "fused online softmax vs two-pass; fp16/bf16 P and V", a.small});
    }
    // data movement: concat on channels (skip connections), nearest upsampling 2x and to odd sizes
    for (auto [s, small] : {std::pair<Shape, bool>{{2, 1280, 32, 32}, false}, {{1, 3, 5, 7}, true}}) {
        Shape s2 = s;
        s2[1] = s[1] / 2 + 1;
        c.push_back({"concat", shape_str(s) + " ++ " + shape_str(s2), {{s}, {s2}},
                     [](const std::vector<Tensor>& in) { return ops::concat({in[0], in[1]}, 1); }, kExact, kExact, kExact,
                     "a copy", small});
        c.push_back({"upsample_nearest", shape_str(s) + " x2", {{s}},
                     [](const std::vector<Tensor>& in) { return ops::upsample_nearest2x(in[0]); }, kExact, kExact, kExact,
                     "a copy", small});
        const int64_t oh = s[2] * 2 - 1, ow = s[3] * 2 + 1;
        c.push_back({"upsample_nearest", shape_str(s) + " to " + std::to_string(oh) + "x" + std::to_string(ow), {{s}},
                     [oh, ow](const std::vector<Tensor>& in) { return ops::upsample_nearest(in[0], oh, ow); }, kExact, kExact,
                     kExact, "a copy (PyTorch's nearest index rule)", true});
    }
    // sinusoidal timestep embedding: the UNet's time (320) and SDXL's added time ids (256 per id)
    for (auto [n, dim] : {std::pair<int64_t, int>{2, 320}, {12, 256}, {3, 7}}) {
        const int d = dim;
        c.push_back({"timestep_embedding", "[" + std::to_string(n) + "] dim " + std::to_string(d), {{{n}, 0.0f, 1000.0f, false, true}},
                     [d](const std::vector<Tensor>& in) { return ops::timestep_embedding(in[0], d, true, 0.0f, 1.0f, 10000.0f); },
                     1e-7, 1e-7, 1e-7, "sin/cos of t * exp(-log(10000) i / half): float32 in any dtype", d < 64});
    }
    return c;
}

// Whether a real-shape case is cheap enough for the CPU SIMT emulator (CI): at most 3 M input elements for the
// memory-bound ops, at most 5e8 multiply-adds for the GEMM-like ones (the fake cuBLAS/cuDNN run plain loops and
// the attention kernel runs thread by thread). Every op also has mid-size cases below these limits (the
// SDXL channel widths and head sizes at smaller spatial sizes), so no op is left out on the emulator.
bool fits_emulator(const Case& c) {
    double elems = 0;
    for (const Input& in : c.inputs) elems += double(shape_numel(in.shape));
    const Shape& a = c.inputs[0].shape;
    double macs = 0;
    if (c.op == "linear") macs = double(shape_numel(a)) * double(c.inputs[1].shape[0]);  // M K N
    if (c.op == "matmul") macs = double(shape_numel(a)) * double(c.inputs[1].shape.back()) *
                                 double(std::max<int64_t>(1, c.inputs[1].shape[0] / std::max<int64_t>(1, a[0])));
    if (c.op == "conv2d" || c.op == "conv2d_fused") macs = double(shape_numel(a)) * double(shape_numel(c.inputs[1].shape)) / double(a[1]);
    if (c.op == "attention") macs = 2.0 * double(shape_numel(a)) * double(c.inputs[1].shape[2]);
    return macs > 0 ? macs <= 5e8 : elems <= 3e6;
}

Tensor random_input(const Input& in, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(in.lo, in.hi);
    if (in.i64) {
        Tensor t = Tensor::empty(in.shape, DType::I64);
        for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = int64_t(std::floor(u(rng)));
        return t;
    }
    Tensor t = Tensor::empty(in.shape, DType::F32);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
    return t;
}

double nmse(const Tensor& got, const Tensor& want) {
    const Tensor g = got.to(Device::CPU).to(DType::F32).contiguous();
    const Tensor w = want.to(Device::CPU).to(DType::F32).contiguous();
    if (g.shape() != w.shape()) return INFINITY;
    double num = 0, den = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {
        const double a = g.data<float>()[i], b = w.data<float>()[i];
        if (std::isnan(a) != std::isnan(b)) return INFINITY;
        if (std::isnan(a)) continue;
        num += (a - b) * (a - b);
        den += b * b;
    }
    return den > 0 ? num / den : num;
}

void device_sync() {
#if defined(SDXL_WITH_CUDA)
    (void)cudaDeviceSynchronize();
#endif
}

const char* dtype_label(DType t) { return t == DType::F32 ? "f32" : t == DType::F16 ? "f16" : "bf16"; }

}  // namespace

int main(int argc, char** argv) {
    bool perf = false, small_only = false, self_check = false, emulator = false;
    std::string only_op, only_dtype;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--perf") perf = true;
        else if (a == "--small") small_only = true;
        else if (a == "--emulator") emulator = true;
        else if (a == "--cpu-self-check") self_check = true;
        else if (a == "--versions") {  // driver, runtime, and the cuBLAS/cuDNN this process loads
            std::cout << device::cuda_versions();
            return 0;
        }
        else if (a == "--op" && i + 1 < argc) only_op = argv[++i];
        else if (a == "--dtype" && i + 1 < argc) only_dtype = argv[++i];
        else {
            std::cerr << "usage: sdxl_backend_ops [--versions] [--perf] [--small] [--emulator] [--cpu-self-check] [--op NAME] [--dtype f32|f16|bf16]\n";
            return 2;
        }
    }
    const Device target = self_check ? Device::CPU : Device::CUDA;
    if (self_check) {
        only_dtype = "f32";  // the CPU backend computes in F32 only
        std::cout << "backend ops: CPU self-check of the cases (no device involved)\n";
    } else if (!device::cuda_available()) {
        std::cout << "backend ops: skipped, no CUDA device (" << device::cuda_status() << ")\n";
        return 0;
    }
    if (!self_check)
        std::cout << "backend ops: cuda vs cpu, " << device::cuda_status() << (perf ? " (perf mode)" : "") << "\n";
    int failed = 0, passed = 0, unsupported = 0;
    std::mt19937 rng(1234);
    for (const Case& c : build_cases()) {
        if (!only_op.empty() && c.op != only_op) continue;
        if (small_only && !c.small) continue;
        if (emulator && !c.small && !fits_emulator(c)) continue;
        std::vector<Tensor> host;
        for (const Input& in : c.inputs) host.push_back(random_input(in, rng));
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            if (!only_dtype.empty() && only_dtype != dtype_label(dt)) continue;
            const double tol = dt == DType::F32 ? c.tol_f32 : dt == DType::F16 ? c.tol_f16 : c.tol_bf16;
            if (tol < 0) continue;
            // The same rounded values for both backends: round on the host, the CPU computes in F32.
            std::vector<Tensor> cpu_in, gpu_in;
            for (size_t i = 0; i < host.size(); ++i) {
                const bool keep = c.inputs[i].keep_f32 || host[i].dtype() == DType::I64;
                const Tensor rounded = keep ? host[i] : host[i].to(dt);
                cpu_in.push_back(keep ? rounded : rounded.to(DType::F32));
                gpu_in.push_back(rounded.to(target));
            }
            char line[512];
            try {
                const Tensor want = c.run(cpu_in);
                Tensor got = c.run(gpu_in);
                device_sync();
                const double err = nmse(got, want);
                const bool ok = self_check ? err == 0.0 : err <= tol;
                if (perf) {
                    for (int w = 0; w < 3; ++w) (void)c.run(gpu_in);
                    device_sync();
                    std::vector<double> ms;
                    for (int r = 0; r < 10; ++r) {
                        const auto t0 = std::chrono::steady_clock::now();
                        (void)c.run(gpu_in);
                        device_sync();
                        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
                    }
                    std::sort(ms.begin(), ms.end());
                    std::snprintf(line, sizeof line, "%-4s %-18s %-5s %-56s nmse %.2e  %9.3f ms", ok ? "ok" : "FAIL",
                                  c.op.c_str(), dtype_label(dt), c.label.c_str(), err, ms[ms.size() / 2]);
                } else {
                    std::snprintf(line, sizeof line, "%-4s %-18s %-5s %-56s nmse %.2e (tol %.0e: %s)", ok ? "ok" : "FAIL",
                                  c.op.c_str(), dtype_label(dt), c.label.c_str(), err, tol, c.reason);
                }
                std::cout << line << "\n";
                (ok ? passed : failed)++;
            } catch (const Error& e) {
                if (e.code() == ErrorCode::UNSUPPORTED) {
                    std::snprintf(line, sizeof line, "--   %-18s %-5s %-56s unsupported: %s", c.op.c_str(), dtype_label(dt),
                                  c.label.c_str(), e.message().c_str());
                    std::cout << line << "\n";
                    ++unsupported;
                } else {
                    std::cout << "FAIL " << c.op << " " << dtype_label(dt) << " " << c.label << ": " << e.what() << "\n";
                    ++failed;
                }
            }
        }
    }
    std::cout << "backend ops: " << passed << " passed, " << failed << " failed, " << unsupported << " unsupported\n";
    return failed == 0 ? 0 : 1;
}
