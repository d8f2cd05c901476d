// CUDA attention. Two halves:
//  * host emulation (every build, no GPU needed): the kernels' own per-thread routines
//    (backends/cuda/cuda_attention_tile.h), run block by block and thread by thread on the CPU
//    (cuda_attention_host.h), against the cpu backend's attention;
//  * device (only where a CUDA device is usable -- a GPU, or the SIMT emulator in the emulator build -- else
//    skipped with the reason): the CUDA op against the cpu op, and the tensor-core kernel on its own shapes
//    (test_cuda_attention_mma).
//
// Tolerances (error = max |out - ref| / max |ref| over the output):
//  * F32, against a double-precision reference: max(2e-6, 2x the cpu backend's own error against it). The
//    floor covers summation order and exp; the relative part covers peaky softmaxes, where an fp32 score of
//    magnitude |s| carries ~|s| * 6e-8 of rounding whoever computes it (both grow alike).
//  * F16 / BF16, ref = cpu attention in F32 on the same (rounded) inputs:
//    (FlashAttention's rule) at most 2x the error of a naive half-precision attention against the
//    same fp32 reference. The naive one rounds S = scale * q k^T to the dtype, takes the softmax in fp32,
//    rounds P to the dtype, and rounds O = P V (fp32 sums) to the dtype, as a half-precision
//    matmul/softmax/matmul does.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "backends/cuda/cuda_attention_host.h"
#include "check.h"
#if defined(SDXL_WITH_CUDA)
#include "backends/cuda/cuda_attention.cuh"
#endif
#include "core/device.h"
#include "core/tensor.h"
#include "ops/ops.h"
#include "test_tensors.h"

using namespace sdxl;
using namespace sdxl::cuda::attn;
using sdxl_test::rnd;

namespace {

constexpr double kTolF32 = 2e-6;

float resolved_scale(const Tensor& q, float scale) {
    return scale > 0.0f ? scale : float(1.0 / std::sqrt(double(q.shape()[3])));
}

// Runs the emulated kernel for q's dtype (q/k/v CPU tensors of one dtype): the flash kernel where the CUDA
// backend would use it (unless force_simple), else the simple kernel. Returns the output in F32.
Tensor emulate(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, bool causal, float scale,
               bool force_simple = false) {
    Tensor out = Tensor::empty({q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]}, q.dtype());
    if (out.numel() == 0) return out.to(DType::F32);
    const AttnParams p = attention_params(q, k, v, mask, causal, resolved_scale(q, scale), out);
    auto run = [&](auto elem) {
        using E = decltype(elem);
        if (!force_simple && p.Dv == p.D && flash_head_dim(p.D)) {
            switch (p.D) {
                case 32: return emulate_flash<E, 32>(p);
                case 40: return emulate_flash<E, 40>(p);
                case 64: return emulate_flash<E, 64>(p);
                case 80: return emulate_flash<E, 80>(p);
                default: break;
            }
        }
        emulate_simple<E>(p);
    };
    switch (q.dtype()) {
        case DType::F16: run(ElemF16{}); break;
        case DType::BF16: run(ElemBF16{}); break;
        default: run(ElemF32{}); break;
    }
    return out.to(DType::F32);
}

// max |a - b| / max |b| (b the reference); 0 for an all-zero reference that a matches exactly.
double rel_err(const Tensor& a_in, const Tensor& b_in) {
    Tensor a = a_in.to(DType::F32).contiguous(), b = b_in.to(DType::F32).contiguous();
    if (a.shape() != b.shape()) return INFINITY;
    double num = 0, den = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
        const double x = a.data<float>()[i], y = b.data<float>()[i];
        if (!std::isfinite(x)) return INFINITY;
        num = std::max(num, std::fabs(x - y));
        den = std::max(den, std::fabs(y));
    }
    return den > 0 ? num / den : num;
}

// Naive half-precision attention (see the header comment), output widened to F32. Inputs in F32 already
// rounded to dt.
// dt == F32: the same loops in double without rounding (a high-precision reference, rounded to F32 at the end).
Tensor naive_half(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask_in, bool causal,
                  float scale, DType dt) {
    const Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const int64_t B = q.shape()[0], H = q.shape()[1], Lq = q.shape()[2], D = q.shape()[3];
    const int64_t Lk = k.shape()[2], Dv = v.shape()[3];
    const float sc = resolved_scale(q, scale);
    auto rnd_dt = [dt](double x) -> double {
        if (dt == DType::F32) return x;
        return dt == DType::F16 ? f16_to_f32(f32_to_f16(float(x))) : bf16_to_f32(f32_to_bf16(float(x)));
    };
    using Acc = double;  // exact enough for the F32 reference; the half variants round where a half kernel would
    Tensor mask;
    if (mask_in.defined()) mask = mask_in.to(DType::F32).contiguous();
    Tensor y = Tensor::zeros({B, H, Lq, Dv}, DType::F32);
    const float *qp = q.data<float>(), *kp = k.data<float>(), *vp = v.data<float>();
    std::vector<Acc> s(size_t(Lk) + 1);
    for (int64_t bh = 0; bh < B * H; ++bh)
        for (int64_t i = 0; i < Lq; ++i) {
            Acc mx = -INFINITY;
            for (int64_t j = 0; j < Lk; ++j) {
                const bool ok = (!mask.defined() || mask.data<float>()[(bh / H) * Lk + j] != 0.0f) && (!causal || j <= i);
                Acc d = 0;
                for (int64_t t = 0; t < D; ++t) d += Acc(qp[(bh * Lq + i) * D + t]) * kp[(bh * Lk + j) * D + t];
                s[size_t(j)] = ok ? rnd_dt(Acc(sc) * d) : -INFINITY;
                mx = std::max(mx, s[size_t(j)]);
            }
            if (mx == -INFINITY) continue;
            Acc sum = 0;
            for (int64_t j = 0; j < Lk; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
            for (int64_t j = 0; j < Lk; ++j) s[size_t(j)] = rnd_dt(s[size_t(j)] / sum);
            for (int64_t t = 0; t < Dv; ++t) {
                Acc o = 0;
                for (int64_t j = 0; j < Lk; ++j) o += s[size_t(j)] * vp[(bh * Lk + j) * Dv + t];
                y.data<float>()[(bh * Lq + i) * Dv + t] = float(rnd_dt(o));
            }
        }
    return y;
}

struct Case {
    std::string name;
    Tensor q, k, v, mask;
    bool causal = false;
    float scale = 0.0f;
};

Tensor mask_f32(int64_t B, int64_t Lk, uint64_t seed, bool last_batch_all_masked) {
    Tensor m = rnd({B, Lk}, seed, 0.0f, 1.0f);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < Lk; ++j) {
            float& x = m.data<float>()[b * Lk + j];
            x = (last_batch_all_masked && b == B - 1) ? 0.0f : (x < 0.25f ? 0.0f : 1.0f);
        }
    return m;
}

Tensor mask_i64(int64_t B, int64_t Lk, int64_t valid0) {  // batch b keeps keys [b, valid0 + b)
    Tensor m = Tensor::empty({B, Lk}, DType::I64);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < Lk; ++j) m.data<int64_t>()[b * Lk + j] = (j >= b && j < valid0 + b) ? 7 : 0;
    return m;
}

// Shapes covering both kernels: rows/keys not multiples of the tiles (128 rows, 64 keys, 16-key chunks),
// cross-attention with 77 and 154 keys, masks (F32, I64, fully masked rows), causal with Lq == Lk and not,
// strided views, every flash head size, and simple-path sizes (D != Dv, D = 512 as in the VAE).
std::vector<Case> cases() {
    std::vector<Case> c;
    c.push_back({"self 200 D64", rnd({2, 2, 200, 64}, 1), rnd({2, 2, 200, 64}, 2), rnd({2, 2, 200, 64}, 3), {}});
    c.push_back({"cross 150x77 D64 F32 mask, batch 1 fully masked", rnd({2, 3, 150, 64}, 4, -2, 2),
                 rnd({2, 3, 77, 64}, 5, -2, 2), rnd({2, 3, 77, 64}, 6), mask_f32(2, 77, 7, true)});
    c.push_back({"cross 131x154 D64 I64 mask", rnd({2, 1, 131, 64}, 8), rnd({2, 1, 154, 64}, 9),
                 rnd({2, 1, 154, 64}, 10), mask_i64(2, 154, 100)});
    // CLIP text encoder: causal + padding mask; batch 1 masks key 0, so its query 0 has no key (zeros).
    c.push_back({"causal 77 D64 I64 mask", rnd({2, 2, 77, 64}, 11, -2, 2), rnd({2, 2, 77, 64}, 12, -2, 2),
                 rnd({2, 2, 77, 64}, 13), mask_i64(2, 77, 60), true});
    c.push_back({"causal Lq 300 > Lk 140 D64", rnd({1, 2, 300, 64}, 14), rnd({1, 2, 140, 64}, 15),
                 rnd({1, 2, 140, 64}, 16), {}, true});
    c.push_back({"causal Lq 70 < Lk 200 D64 + mask", rnd({2, 1, 70, 64}, 17), rnd({2, 1, 200, 64}, 18),
                 rnd({2, 1, 200, 64}, 19), mask_f32(2, 200, 20, false), true});
    c.push_back({"peaky scores (scale 0.6)", rnd({1, 2, 140, 64}, 21, -3, 3), rnd({1, 2, 100, 64}, 22, -3, 3),
                 rnd({1, 2, 100, 64}, 23), {}, false, 0.6f});
    for (int d : {32, 40, 80})
        c.push_back({"self 130 D" + std::to_string(d), rnd({1, 2, 130, d}, 30 + d), rnd({1, 2, 130, d}, 31 + d),
                     rnd({1, 2, 130, d}, 32 + d), mask_f32(1, 130, 33, false), d == 40});
    // [B, L, H, D] projections viewed as [B, H, L, D] (strided, read without a copy).
    c.push_back({"strided self 140 D64", rnd({2, 140, 2, 64}, 40).transpose(1, 2),
                 rnd({2, 140, 2, 64}, 41).transpose(1, 2), rnd({2, 140, 2, 64}, 42).transpose(1, 2), {}});
    c.push_back({"simple D24 Dv40 causal + mask", rnd({2, 2, 150, 24}, 50, -2, 2), rnd({2, 2, 150, 24}, 51, -2, 2),
                 rnd({2, 2, 150, 40}, 52), mask_f32(2, 150, 53, false), true});
    c.push_back({"simple D512 (VAE-like) 1 head", rnd({1, 1, 90, 512}, 54), rnd({1, 1, 300, 512}, 55),
                 rnd({1, 1, 300, 512}, 56), {}});
    c.push_back({"no keys", rnd({1, 2, 5, 64}, 57), Tensor::empty({1, 2, 0, 64}, DType::F32),
                 Tensor::empty({1, 2, 0, 64}, DType::F32), {}});
    return c;
}

}  // namespace

// Emulated kernels (F32) against the cpu backend; flash cases also run through the simple kernel.
SDXL_TEST(test_cuda_attention_emulated_f32) {
    double worst = 0;
    for (const Case& c : cases()) {
        const Tensor ref = naive_half(c.q, c.k, c.v, c.mask, c.causal, c.scale, DType::F32);
        const double tol = std::max(kTolF32, 2 * rel_err(ops::attention(c.q, c.k, c.v, c.mask, c.causal, c.scale), ref));
        for (bool simple : {false, true}) {
            const Tensor got = emulate(c.q, c.k, c.v, c.mask, c.causal, c.scale, simple);
            const double err = rel_err(got, ref);
            worst = std::max(worst, err);
            CHECK_MSG(err <= tol, c.name << (simple ? " (simple)" : " (flash/default)") << ": error " << err
                                         << " > " << tol);
            if (err > 2 * kTolF32) std::cout << "  " << c.name << ": error " << err << " (cpu backend " << tol / 2 << ")\n";
        }
    }
    std::cout << "  emulated F32 kernels: max relative error vs double " << worst << "\n";
}

// Emulated kernels in F16/BF16 against the fp32 reference, within 2x a naive half-precision attention.
SDXL_TEST(test_cuda_attention_emulated_half) {
    for (DType dt : {DType::F16, DType::BF16}) {
        double worst_ratio = 0, worst_err = 0;
        for (const Case& c : cases()) {
            if (c.k.shape()[2] == 0) continue;
            // Inputs rounded to dt; the reference sees exactly those values in F32.
            const Tensor q = c.q.to(dt), k = c.k.to(dt), v = c.v.to(dt);
            const Tensor qf = q.to(DType::F32), kf = k.to(DType::F32), vf = v.to(DType::F32);
            const Tensor ref = ops::attention(qf, kf, vf, c.mask, c.causal, c.scale);
            const double naive = rel_err(naive_half(qf, kf, vf, c.mask, c.causal, c.scale, dt), ref);
            for (bool simple : {false, true}) {
                const double err = rel_err(emulate(q, k, v, c.mask, c.causal, c.scale, simple), ref);
                CHECK_MSG(err <= 2 * naive, dtype_name(dt) << " " << c.name << (simple ? " (simple)" : "")
                                                         << ": error " << err << " > 2 x naive " << naive);
                worst_err = std::max(worst_err, err);
                worst_ratio = std::max(worst_ratio, naive > 0 ? err / naive : 0.0);
            }
        }
        std::cout << "  emulated " << dtype_name(dt) << " kernels: max relative error " << worst_err
                  << ", at most " << worst_ratio << " x the naive half attention's\n";
    }
}

// Keys removed by key_mask must not matter whatever their K holds (ops.h; the cpu backend overwrites their
// scores with -inf): padding positions with inf/NaN keys still give the cpu's finite output, on both kernels.
SDXL_TEST(test_cuda_attention_masked_nonfinite_keys) {
    for (int d : {64, 24}) {  // flash and simple by default
        const Tensor q = rnd({2, 2, 70, d}, 60), v = rnd({2, 2, 90, d}, 61);
        Tensor k = rnd({2, 2, 90, d}, 62);
        const Tensor mask = mask_f32(2, 90, 63, false);
        for (int64_t bh = 0; bh < 4; ++bh)
            for (int64_t j = 0; j < 90; ++j)
                if (mask.data<float>()[(bh / 2) * 90 + j] == 0.0f)
                    k.data<float>()[(bh * 90 + j) * d] = j % 2 ? NAN : INFINITY;
        const Tensor ref = ops::attention(q, k, v, mask, false, 0.0f);
        CHECK_MSG(rel_err(ref, ref) == 0, "cpu reference not finite");
        for (bool simple : {false, true}) {
            const double err = rel_err(emulate(q, k, v, mask, false, 0.0f, simple), ref);
            CHECK_MSG(err <= 1e-5, "D" << d << (simple ? " (simple)" : "") << ": error " << err);
        }
        if (device::cuda_available()) {
            const Tensor got = ops::attention(q.to(Device::CUDA), k.to(Device::CUDA), v.to(Device::CUDA),
                                              mask.to(Device::CUDA), false, 0.0f)
                                   .to(Device::CPU);
            const double err = rel_err(got, ref);
            CHECK_MSG(err <= 1e-5, "cuda D" << d << ": error " << err);
        }
    }
}

// The CUDA op against the cpu op (F32, F16, BF16), where a device exists.
SDXL_TEST(test_cuda_attention_device) {
    if (!device::cuda_available()) {
        std::cout << "  (skipped: " << device::cuda_status() << ")\n";
        return;
    }
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
        double worst = 0;
        for (const Case& c : cases()) {
            const Tensor q = c.q.to(dt), k = c.k.to(dt), v = c.v.to(dt);
            const Tensor qf = q.to(DType::F32), kf = k.to(DType::F32), vf = v.to(DType::F32);
            const Tensor ref = ops::attention(qf, kf, vf, c.mask, c.causal, c.scale);
            // to(CUDA) copies contiguous; a strided case is uploaded as [B, L, H, D] and viewed on the device.
            auto up = [](const Tensor& t) {
                return t.is_contiguous() ? t.to(Device::CUDA)
                                         : t.transpose(1, 2).contiguous().to(Device::CUDA).transpose(1, 2);
            };
            const Tensor mask = c.mask.defined() ? c.mask.to(Device::CUDA) : Tensor();
            const Tensor got = ops::attention(up(q), up(k), up(v), mask, c.causal, c.scale).to(Device::CPU);
            CHECK_MSG(got.dtype() == dt, c.name << ": output dtype " << dtype_name(got.dtype()));
            const double err = rel_err(got, ref);
            double tol = std::max(kTolF32, 2 * rel_err(ref, naive_half(qf, kf, vf, c.mask, c.causal, c.scale,
                                                                           DType::F32)));
            if (dt == DType::F32) {  // against double, as the emulation
                const Tensor exact = naive_half(qf, kf, vf, c.mask, c.causal, c.scale, DType::F32);
                const double e = rel_err(got, exact);
                CHECK_MSG(e <= tol, "F32 " << c.name << ": cuda error " << e << " > " << tol);
                worst = std::max(worst, e);
                continue;
            }
            if (c.k.shape()[2] > 0)
                tol = 2 * rel_err(naive_half(qf, kf, vf, c.mask, c.causal, c.scale, dt), ref);
            CHECK_MSG(err <= tol, dtype_name(dt) << " " << c.name << ": cuda error " << err << " > " << tol);
            worst = std::max(worst, err);
        }
        std::cout << "  cuda " << dtype_name(dt) << " attention: max relative error " << worst << "\n";
    }
}

// The tensor-core kernel (cuda_attention_mma.cu: F16/BF16, D = 64 and 80, no mask, not causal) against the fp32
// cpu attention on the same rounded inputs: error at most 2x that of the naive half-precision attention
// (FlashAttention's rule, see the header comment). Sizes off the kernel's tiles (128 query rows per block,
// 64-key K/V tiles, 16-row warps): Lq, Lk in {5, 13, 77, 100, 257}; on the device, [B, L, H, D] projections
// viewed as [B, H, L, D] and a key range narrowed out of a longer tensor (strided reads, no copy); peaky
// scores that move the running max across tiles. Each case also checks which kernel ops::attention takes:
// q rows that cannot be copied 16 bytes at a time keep the SIMT flash kernel (and must be right too).
SDXL_TEST(test_cuda_attention_mma) {
    if (!device::cuda_available()) {
        std::cout << "  (skipped: " << device::cuda_status() << ")\n";
        return;
    }
#if defined(SDXL_WITH_CUDA)
    // How a case's (contiguous) q/k/v are laid out on the device.
    enum class Layout { CONTIGUOUS, BLHD_VIEWS, KEYS_NARROWED, Q_ROWS_PADDED };
    struct MmaCase {
        std::string name;
        Tensor q, k, v;  // F32, contiguous [B, H, L, D]
        float scale;
        Layout layout;
    };
    auto on_device = [](const Tensor& t, Layout layout, bool key_or_value) {
        const int64_t B = t.shape()[0], H = t.shape()[1], L = t.shape()[2], D = t.shape()[3];
        switch (layout) {
            case Layout::BLHD_VIEWS:  // uploaded as [B, L, H, D], viewed as [B, H, L, D]
                return t.transpose(1, 2).contiguous().to(Device::CUDA).transpose(1, 2);
            case Layout::KEYS_NARROWED:  // rows 13 .. 13 + L of L + 30 (an offset base pointer)
                if (!key_or_value) break;
                return ops::concat({Tensor::zeros({B, H, 13, D}, t.dtype()), t,
                                    Tensor::zeros({B, H, 17, D}, t.dtype())},
                                   2)
                    .to(Device::CUDA)
                    .narrow(2, 13, L);
            case Layout::Q_ROWS_PADDED:  // q rows D + 4 elements apart: not 16-byte aligned
                if (key_or_value) break;
                return ops::concat({t, Tensor::zeros({B, H, L, 4}, t.dtype())}, 3).to(Device::CUDA).narrow(3, 0, D);
            case Layout::CONTIGUOUS: break;
        }
        return t.to(Device::CUDA);
    };
    for (int D : {64, 80}) {
        const std::vector<MmaCase> cases = {
            {"self 257", rnd({1, 2, 257, D}, 70), rnd({1, 2, 257, D}, 71), rnd({1, 2, 257, D}, 72), 0.0f,
             Layout::CONTIGUOUS},
            {"cross 100 x 77", rnd({2, 2, 100, D}, 73), rnd({2, 2, 77, D}, 74), rnd({2, 2, 77, D}, 75), 0.0f,
             Layout::CONTIGUOUS},
            {"77 x 257, [B, L, H, D] views", rnd({2, 3, 77, D}, 76), rnd({2, 3, 257, D}, 77), rnd({2, 3, 257, D}, 78),
             0.0f, Layout::BLHD_VIEWS},
            {"257 x 100 narrowed keys, peaky (scale 0.6)", rnd({1, 2, 257, D}, 79, -3, 3),
             rnd({1, 2, 100, D}, 80, -3, 3), rnd({1, 2, 100, D}, 81), 0.6f, Layout::KEYS_NARROWED},
            {"5 x 13 (one partial tile)", rnd({1, 3, 5, D}, 82), rnd({1, 3, 13, D}, 83), rnd({1, 3, 13, D}, 84), 0.0f,
             Layout::CONTIGUOUS},
            {"100 x 77, q rows not 16-byte aligned (SIMT flash)", rnd({1, 2, 100, D}, 85), rnd({1, 2, 77, D}, 86),
             rnd({1, 2, 77, D}, 87), 0.0f, Layout::Q_ROWS_PADDED},
        };
        for (DType dt : {DType::F16, DType::BF16}) {
            double worst_err = 0, worst_ratio = 0;
            for (const MmaCase& c : cases) {
                // Inputs rounded to dt; the reference sees exactly those values in F32.
                const Tensor q = c.q.to(dt), k = c.k.to(dt), v = c.v.to(dt);
                const Tensor qf = q.to(DType::F32), kf = k.to(DType::F32), vf = v.to(DType::F32);
                const Tensor ref = ops::attention(qf, kf, vf, Tensor(), false, c.scale);
                const double naive = rel_err(naive_half(qf, kf, vf, Tensor(), false, c.scale, dt), ref);
                const Tensor qd = on_device(q, c.layout, false), kd = on_device(k, c.layout, true),
                             vd = on_device(v, c.layout, true);
                CHECK_MSG((c.layout == Layout::CONTIGUOUS) == (qd.is_contiguous() && kd.is_contiguous()),
                          c.name << ": the device tensors are not laid out as intended");
                const Tensor out = Tensor::empty({qd.shape()[0], qd.shape()[1], qd.shape()[2], D}, dt, Device::CUDA);
                const float scale = c.scale > 0.0f ? c.scale : float(1.0 / std::sqrt(double(D)));
                const bool uses_mma =
                    cuda::attention_uses_mma(attention_params(qd, kd, vd, Tensor(), false, scale, out),
                                             dt == DType::F16 ? cuda::AttnDType::F16 : cuda::AttnDType::BF16);
                CHECK_MSG(uses_mma == (c.layout != Layout::Q_ROWS_PADDED),
                          c.name << ": tensor-core kernel " << (uses_mma ? "taken" : "not taken"));
                const Tensor got = ops::attention(qd, kd, vd, Tensor(), false, c.scale).to(Device::CPU);
                CHECK_MSG(got.dtype() == dt, c.name << ": output dtype " << dtype_name(got.dtype()));
                const double err = rel_err(got, ref);
                CHECK_MSG(err <= 2 * naive, "D" << D << " " << dtype_name(dt) << " " << c.name << ": error " << err
                                                << " > 2 x naive " << naive);
                std::cout << "  D" << D << " " << dtype_name(dt) << " " << c.name << ": error " << err << ", naive "
                          << naive << " (" << (naive > 0 ? err / naive : 0.0) << " x)\n";
                worst_err = std::max(worst_err, err);
                worst_ratio = std::max(worst_ratio, naive > 0 ? err / naive : 0.0);
            }
            std::cout << "  tensor-core attention D" << D << " " << dtype_name(dt) << ": max relative error "
                      << worst_err << ", at most " << worst_ratio << " x the naive half attention's (bound 2 x)\n";
        }
    }
#endif
}
