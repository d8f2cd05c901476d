// The CUDA kernels of the non-GEMM/conv/attention ops, data movement and dtype conversion, against the CPU
// backend. Skipped (and said so) where no device is usable.
//
// Tolerances:
//  - data movement (strided copy, concat, upsample) and dtype conversion: bit-exact (0 difference);
//  - F32 add/sub/mul/scale: exact (the kernels keep the CPU's unfused float operations);
//  - F32 transcendental math: |gpu - cpu| <= 1e-6 + 1e-6 |cpu| (activations, timestep embedding),
//    2e-6 relative for softmax, 5e-6 abs + 5e-6 rel for the norms (fp32 vs the CPU's double statistics);
//  - F16/BF16: the CPU reference runs in F32 on the same (rounded) inputs; the device's max error must stay
//    within 2x the max error of rounding that reference to the dtype (the best a fp16 result can do), plus
//    1e-6 of the reference's scale.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <vector>

#include "check.h"
#include "core/device.h"
#include "core/half.h"
#include "core/tensor.h"
#include "nn/weights.h"
#include "ops/ops.h"
#include "test_tensors.h"

#ifdef SDXL_WITH_CUDA
#include "backends/cuda/cuda_norm.cuh"
#endif

using namespace sdxl;
using sdxl_test::rnd;

namespace {

// The fused group_norm + SiLU launcher called directly (the op table's group_norm_silu, without ops/' checks).
Tensor gn_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
#ifdef SDXL_WITH_CUDA
    return cuda::group_norm_silu(x, groups, gamma, beta, eps);
#else
    fail(ErrorCode::UNSUPPORTED, "no CUDA backend in this build");
#endif
}

bool have_device() {
    if (device::cuda_available()) return true;
    std::cout << "  (skipped: " << device::cuda_status() << ")\n";
    return false;
}

const DType kFloatTypes[] = {DType::F32, DType::F16, DType::BF16};

// The F32 CPU tensor as the device sees it after narrowing to dt (exact for F32).
Tensor rounded(const Tensor& cpu, DType dt) { return cpu.to(dt).to(DType::F32); }
Tensor to_dev(const Tensor& cpu, DType dt) { return cpu.to(dt).to(Device::CUDA); }
Tensor back(const Tensor& dev) { return dev.to(Device::CPU).to(DType::F32); }

bool same_bits(const Tensor& a, const Tensor& b) {
    const Tensor ac = a.contiguous(), bc = b.contiguous();
    return ac.shape() == bc.shape() && ac.dtype() == bc.dtype() &&
           std::memcmp(ac.raw_data(), bc.raw_data(), size_t(ac.numel()) * dtype_size(ac.dtype())) == 0;
}

// Largest |got - ref| (NaN in both places counts as equal, in one place as infinite).
double max_err(const Tensor& got, const Tensor& ref) {
    const float* g = got.data<float>();
    const float* r = ref.data<float>();
    double m = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) {
        if (std::isnan(g[i]) || std::isnan(r[i])) {
            if (std::isnan(g[i]) != std::isnan(r[i])) return std::numeric_limits<double>::infinity();
            continue;
        }
        if (g[i] == r[i]) continue;  // equal infinities
        m = std::max(m, std::fabs(double(g[i]) - double(r[i])));
    }
    return m;
}

double max_abs(const Tensor& t) {
    double m = 0;
    for (int64_t i = 0; i < t.numel(); ++i)
        if (std::isfinite(t.data<float>()[i])) m = std::max(m, double(std::fabs(t.data<float>()[i])));
    return m;
}

// gpu: the device result (any float dtype); ref: the CPU F32 result on rounded(inputs, dt).
void check_result(const std::string& name, DType dt, const Tensor& gpu, const Tensor& ref, double atol,
                  double rtol) {
    CHECK_MSG(gpu.device() == Device::CUDA && gpu.dtype() == dt, name << ": got " << gpu.describe());
    const Tensor got = back(gpu);
    CHECK_MSG(got.shape() == ref.shape(), name << ": shape " << shape_str(got.shape()) << " vs "
                                               << shape_str(ref.shape()));
    if (got.shape() != ref.shape()) return;
    if (dt == DType::F32) {
        const float* g = got.data<float>();
        const float* r = ref.data<float>();
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < ref.numel(); ++i) {
            const bool both_nan = std::isnan(g[i]) && std::isnan(r[i]);
            const bool ok = both_nan || g[i] == r[i] || std::fabs(double(g[i]) - r[i]) <= atol + rtol * std::fabs(r[i]);
            if (!ok && bad++ == 0) first = i;
        }
        CHECK_MSG(bad == 0, name << " F32: " << bad << " elements outside atol " << atol << " rtol " << rtol
                                 << "; first at " << first << ": " << (first >= 0 ? g[first] : 0.0f) << " vs "
                                 << (first >= 0 ? r[first] : 0.0f));
    } else {
        const double naive = max_err(rounded(ref, dt), ref);
        const double err = max_err(got, ref);
        const double bound = 2 * naive + 1e-6 * max_abs(ref);
        CHECK_MSG(err <= bound, name << " " << dtype_name(dt) << ": max error " << err << " > bound " << bound
                                     << " (rounding the reference costs " << naive << ")");
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------- copy / convert

SDXL_TEST(test_cuda_kernels_strided_copy_exact) {
    if (!have_device()) return;
    const Tensor base = rnd({3, 5, 7, 2}, 11, -100.0f, 100.0f);
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
        const Tensor h = base.to(dt);
        const Tensor d = h.to(Device::CUDA);
        struct View {
            const char* name;
            Tensor host, dev;
        };
        const View views[] = {
            {"permute", h.permute({2, 0, 3, 1}), d.permute({2, 0, 3, 1})},
            {"transpose", h.transpose(1, 2), d.transpose(1, 2)},
            {"narrow", h.narrow(2, 1, 5), d.narrow(2, 1, 5)},
            {"narrow+permute", h.narrow(1, 2, 3).permute({3, 1, 0, 2}), d.narrow(1, 2, 3).permute({3, 1, 0, 2})},
            {"size-1 dims", h.narrow(0, 1, 1).unsqueeze(2).transpose(0, 3), d.narrow(0, 1, 1).unsqueeze(2).transpose(0, 3)},
            {"empty", h.narrow(1, 2, 0).transpose(0, 2), d.narrow(1, 2, 0).transpose(0, 2)},
            {"one element", h.narrow(0, 2, 1).narrow(1, 4, 1).narrow(2, 6, 1).narrow(3, 1, 1),
             d.narrow(0, 2, 1).narrow(1, 4, 1).narrow(2, 6, 1).narrow(3, 1, 1)},
        };
        for (const View& v : views) {
            const Tensor gpu = v.dev.contiguous();
            CHECK_MSG(gpu.is_contiguous() && gpu.device() == Device::CUDA, v.name);
            CHECK_MSG(same_bits(gpu.to(Device::CPU), v.host.contiguous()), v.name << " " << dtype_name(dt));
            // to(CPU) of the strided view itself, and clone().
            CHECK_MSG(same_bits(v.dev.to(Device::CPU), v.host.contiguous()), v.name << " to(cpu)");
            CHECK_MSG(same_bits(v.dev.clone().to(Device::CPU), v.host.contiguous()), v.name << " clone");
        }
    }
    // I64 (bit copy of 8-byte elements).
    Tensor ih = Tensor::empty({4, 9}, DType::I64);
    for (int64_t i = 0; i < ih.numel(); ++i) ih.data<int64_t>()[i] = (int64_t(1) << 40) * i - 7;
    CHECK(same_bits(ih.to(Device::CUDA).transpose(0, 1).contiguous().to(Device::CPU), ih.transpose(0, 1).contiguous()));
    // 10 dims, none mergeable after the permutation: more than the kernel's 8, the leading ones loop on the host.
    Shape s10 = {2, 3, 2, 3, 2, 2, 3, 2, 2, 3};
    const Tensor big = rnd(s10, 12);
    const std::vector<int> perm = {9, 0, 8, 1, 7, 2, 6, 3, 5, 4};
    CHECK(same_bits(big.to(Device::CUDA).permute(perm).contiguous().to(Device::CPU), big.permute(perm).contiguous()));
}

SDXL_TEST(test_cuda_kernels_convert_exact) {
    if (!have_device()) return;
    // Every F16 and BF16 bit pattern widened to F32, and narrowed to the other 16-bit type.
    Tensor all16 = Tensor::empty({65536}, DType::F16);
    for (int i = 0; i < 65536; ++i) all16.data<uint16_t>()[i] = uint16_t(i);
    Tensor allb = Tensor::empty({65536}, DType::BF16);
    std::memcpy(allb.raw_data(), all16.raw_data(), 65536 * 2);
    for (const Tensor& src : {all16, allb}) {
        const Tensor dev = src.to(Device::CUDA);
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            CHECK_MSG(same_bits(dev.to(dt).to(Device::CPU), src.to(dt)),
                      dtype_name(src.dtype()) << " -> " << dtype_name(dt));
        }
    }
    // F32 -> F16/BF16: specials, ties, subnormals, overflow, then random bit patterns (NaNs included).
    std::vector<float> vals = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e30f, -1e30f,
                               std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                               5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 8.940697e-8f, 6.097555e-5f, 6.1035156e-5f,
                               1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256,
                               1e-40f, -1e-45f, 3.3895314e38f, 3.4028235e38f};
    uint32_t s = 12345;
    for (int i = 0; i < 1 << 20; ++i) {
        s = s * 1664525u + 1013904223u;
        vals.push_back(bits_float(s));
    }
    Tensor f = Tensor::empty({int64_t(vals.size())}, DType::F32);
    std::memcpy(f.raw_data(), vals.data(), vals.size() * 4);
    const Tensor fd = f.to(Device::CUDA);
    for (DType dt : {DType::F16, DType::BF16}) {
        CHECK_MSG(same_bits(fd.to(dt).to(Device::CPU), f.to(dt)), "F32 -> " << dtype_name(dt));
        // Strided source: contiguous() then convert, on the device.
        CHECK_MSG(same_bits(fd.view({-1, 4}).transpose(0, 1).to(dt).to(Device::CPU), f.view({-1, 4}).transpose(0, 1).to(dt)),
                  "strided F32 -> " << dtype_name(dt));
    }
    // I64 <-> F32 on small integers (exact both ways).
    Tensor ih = Tensor::empty({1000}, DType::I64);
    for (int64_t i = 0; i < 1000; ++i) ih.data<int64_t>()[i] = i * 37 - 20000;
    CHECK(same_bits(ih.to(Device::CUDA).to(DType::F32).to(Device::CPU), ih.to(DType::F32)));
    CHECK(same_bits(ih.to(DType::F32).to(Device::CUDA).to(DType::I64).to(Device::CPU), ih));
    // Empty tensors convert to empty tensors.
    CHECK(Tensor::empty({0, 5}, DType::F32, Device::CUDA).to(DType::F16).shape() == Shape({0, 5}));
}

// ---------------------------------------------------------------------------------------- elementwise

SDXL_TEST(test_cuda_kernels_binary_broadcast) {
    if (!have_device()) return;
    struct Case {
        Shape a, b;
    };
    const Case cases[] = {{{1000003}, {1000003}},      {{2, 3, 33, 17}, {3, 1, 17}}, {{4, 1, 5}, {1, 6, 1}},
                          {{1}, {7, 9}},               {{7, 9}, {}},                 {{2, 320, 9, 11}, {320, 1, 1}},
                          {{0, 4}, {4}},               {{3, 1}, {1, 0}},             {{1, 1, 1}, {1}}};
    int seed = 20;
    for (const Case& c : cases) {
        const Tensor a = rnd(c.a, seed++, -3, 3), b = rnd(c.b, seed++, -3, 3);
        for (DType dt : kFloatTypes) {
            const Tensor ra = rounded(a, dt), rb = rounded(b, dt), ga = to_dev(a, dt), gb = to_dev(b, dt);
            const std::string nm = shape_str(c.a) + " op " + shape_str(c.b);
            check_result("add " + nm, dt, ops::add(ga, gb), ops::add(ra, rb), 0, 0);
            check_result("sub " + nm, dt, ops::sub(ga, gb), ops::sub(ra, rb), 0, 0);
            check_result("mul " + nm, dt, ops::mul(gb, ga), ops::mul(rb, ra), 0, 0);
        }
    }
    // Non-contiguous operands are read through their strides: [4, 10, 6] (permuted) + [4, 10, 1] (transposed).
    const Tensor a = rnd({6, 10, 4}, 40), b = rnd({10, 4}, 41);
    for (DType dt : kFloatTypes) {
        const Tensor ga = to_dev(a, dt).permute({2, 1, 0}), gb = to_dev(b, dt).transpose(0, 1).unsqueeze(2);
        const Tensor ra = rounded(a, dt).permute({2, 1, 0}), rb = rounded(b, dt).transpose(0, 1).unsqueeze(2);
        check_result("add strided", dt, ops::add(ga, gb), ops::add(ra, rb), 0, 0);
        check_result("mul strided", dt, ops::mul(gb, ga), ops::mul(rb, ra), 0, 0);
    }
}

SDXL_TEST(test_cuda_kernels_activations) {
    if (!have_device()) return;
    const Tensor x = rnd({1000003}, 50, -8, 8);
    const Tensor xs = rnd({37, 3, 19}, 51, -6, 6);
    const Tensor empty = Tensor::empty({0, 3}, DType::F32);
    for (DType dt : kFloatTypes) {
        for (const Tensor& in : {x, xs, empty}) {
            const Tensor r = rounded(in, dt), g = to_dev(in, dt);
            const std::string nm = " " + shape_str(in.shape());
            check_result("scale" + nm, dt, ops::scale(g, 0.37f, -1.25f), ops::scale(r, 0.37f, -1.25f), 0, 0);
            check_result("silu" + nm, dt, ops::silu(g), ops::silu(r), 1e-6, 1e-6);
            check_result("gelu" + nm, dt, ops::gelu(g), ops::gelu(r), 1e-6, 1e-6);
            check_result("gelu_tanh" + nm, dt, ops::gelu_tanh(g), ops::gelu_tanh(r), 1e-6, 1e-6);
            check_result("quick_gelu" + nm, dt, ops::quick_gelu(g), ops::quick_gelu(r), 1e-6, 1e-6);
        }
        // A strided input goes through the device-side contiguous().
        const Tensor r = rounded(xs, dt).transpose(0, 2), g = to_dev(xs, dt).transpose(0, 2);
        check_result("silu strided", dt, ops::silu(g), ops::silu(r), 1e-6, 1e-6);
        // geglu: first half * gelu(second half) of the last dim.
        for (const Shape& s : {Shape{3, 5, 74}, Shape{2}, Shape{4, 2560}, Shape{0, 6}}) {
            const Tensor in = rnd(s, 52, -4, 4);
            check_result("geglu " + shape_str(s), dt, ops::geglu(to_dev(in, dt)), ops::geglu(rounded(in, dt)), 1e-6,
                         1e-6);
        }
    }
}

// ---------------------------------------------------------------------------------------- norms

SDXL_TEST(test_cuda_kernels_softmax) {
    if (!have_device()) return;
    for (DType dt : kFloatTypes) {
        for (const Shape& s : {Shape{7, 1}, Shape{5, 1000}, Shape{3, 4097}, Shape{2, 3, 77}, Shape{33}, Shape{0, 8}}) {
            const Tensor in = rnd(s, 60, -10, 10);
            check_result("softmax " + shape_str(s), dt, ops::softmax(to_dev(in, dt)), ops::softmax(rounded(in, dt)),
                         1e-12, 2e-6);
        }
        // -inf entries (masked scores) give exact zeros; a row of only -inf gives NaN, as torch.
        Tensor m = rnd({3, 40}, 61, -5, 5);
        const float inf = std::numeric_limits<float>::infinity();
        for (int j = 0; j < 40; j += 3) m.data<float>()[j] = -inf;
        for (int j = 0; j < 40; ++j) m.data<float>()[80 + j] = -inf;
        check_result("softmax -inf", dt, ops::softmax(to_dev(m, dt)), ops::softmax(rounded(m, dt)), 1e-12, 2e-6);
        // A transposed input (device-side contiguous() first).
        const Tensor t = rnd({50, 6}, 62, -3, 3);
        check_result("softmax strided", dt, ops::softmax(to_dev(t, dt).transpose(0, 1)),
                     ops::softmax(rounded(t, dt).transpose(0, 1)), 1e-12, 2e-6);
    }
}

SDXL_TEST(test_cuda_kernels_layer_norm) {
    if (!have_device()) return;
    for (DType dt : kFloatTypes) {
        for (int64_t d : {int64_t(1), int64_t(7), int64_t(768), int64_t(5000)}) {
            const Tensor x = rnd({3, 5, d}, 70, 9, 11);  // offset data: mean ~10, std ~0.6
            const Tensor gamma = rnd({d}, 71, 0.5, 1.5), beta = rnd({d}, 72, -1, 1);
            const Tensor gx = to_dev(x, dt), rx = rounded(x, dt);
            const std::string nm = "layer_norm D=" + std::to_string(d);
            check_result(nm, dt, ops::layer_norm(gx, to_dev(gamma, dt), to_dev(beta, dt), 1e-5f),
                         ops::layer_norm(rx, rounded(gamma, dt), rounded(beta, dt), 1e-5f), 5e-6, 5e-6);
            check_result(nm + " no affine", dt, ops::layer_norm(gx, Tensor(), Tensor(), 1e-6f),
                         ops::layer_norm(rx, Tensor(), Tensor(), 1e-6f), 5e-6, 5e-6);
            check_result(nm + " gamma only", dt, ops::layer_norm(gx, to_dev(gamma, dt), Tensor(), 1e-5f),
                         ops::layer_norm(rx, rounded(gamma, dt), Tensor(), 1e-5f), 5e-6, 5e-6);
        }
        const Tensor e = Tensor::empty({0, 16}, DType::F32);
        CHECK(ops::layer_norm(to_dev(e, dt), Tensor(), Tensor(), 1e-5f).shape() == Shape({0, 16}));
    }
}

SDXL_TEST(test_cuda_kernels_group_norm) {
    if (!have_device()) return;
    struct Case {
        Shape shape;
        int groups;
    };
    // Small groups (one chunk), groups spanning many 8192-value chunks with a partial last one, a 3-D input,
    // groups == channels, and an empty spatial size.
    const Case cases[] = {{{2, 32, 9, 7}, 8},  {{1, 64, 128, 130}, 32}, {{2, 4, 10}, 2},
                          {{1, 6, 5, 5}, 6},   {{2, 64, 0, 3}, 32},     {{1, 1280, 8, 8}, 32}};
    int seed = 80;
    for (const Case& c : cases) {
        const Tensor x = rnd(c.shape, seed++, 2, 6);  // offset data
        const Tensor gamma = rnd({c.shape[1]}, seed++, 0.5, 1.5), beta = rnd({c.shape[1]}, seed++, -1, 1);
        for (DType dt : kFloatTypes) {
            const Tensor gx = to_dev(x, dt), rx = rounded(x, dt), gg = to_dev(gamma, dt), gb = to_dev(beta, dt);
            const Tensor rg = rounded(gamma, dt), rb = rounded(beta, dt);
            const std::string nm = "group_norm " + shape_str(c.shape) + " G=" + std::to_string(c.groups);
            const Tensor ref = ops::group_norm(rx, c.groups, rg, rb, 1e-6f);
            check_result(nm, dt, ops::group_norm(gx, c.groups, gg, gb, 1e-6f), ref, 5e-6, 5e-6);
            check_result(nm + " no affine", dt, ops::group_norm(gx, c.groups, Tensor(), Tensor(), 1e-5f),
                         ops::group_norm(rx, c.groups, Tensor(), Tensor(), 1e-5f), 5e-6, 5e-6);
            // Fused SiLU (ops::group_norm_silu): against the CPU's group_norm then silu (F32 reference), one
            // rounding on the device.
            check_result(nm + " + silu", dt, ops::group_norm_silu(gx, c.groups, gg, gb, 1e-6f),
                         ops::silu(ref), 5e-6, 5e-6);
        }
    }
}

// cuda::group_norm_silu may be called directly (not through ops/): it must reject gamma/beta that its kernel
// would read out of bounds or as the wrong element type.
SDXL_TEST(test_cuda_kernels_group_norm_silu_checks) {
    if (!have_device()) return;
    const Tensor x = to_dev(rnd({1, 8, 4, 4}, 90), DType::F16);
    const Tensor ok = to_dev(rnd({8}, 91), DType::F16);
    CHECK_THROWS_CODE(gn_silu(x, 4, to_dev(rnd({8}, 92), DType::F32), Tensor(), 1e-5f), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(gn_silu(x, 4, ok, to_dev(rnd({4}, 93), DType::F16), 1e-5f), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(gn_silu(x, 4, rnd({8}, 94).to(DType::F16), Tensor(), 1e-5f), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(gn_silu(x, 4, ok, ok, std::numeric_limits<float>::quiet_NaN()), ErrorCode::INVALID_ARGUMENT);
    CHECK(gn_silu(x, 4, ok, ok, 1e-5f).shape() == x.shape());
}

// ---------------------------------------------------------------------------------------- layout / resampling

SDXL_TEST(test_cuda_kernels_concat) {
    if (!have_device()) return;
    for (DType dt : kFloatTypes) {
        const Tensor a = rnd({2, 3, 5}, 90), b = rnd({2, 4, 5}, 91), c = rnd({2, 0, 5}, 92), e = rnd({2, 1, 5}, 93);
        std::vector<Tensor> gp = {to_dev(a, dt), to_dev(b, dt), to_dev(c, dt), to_dev(e, dt)};
        std::vector<Tensor> rp = {rounded(a, dt), rounded(b, dt), rounded(c, dt), rounded(e, dt)};
        check_result("concat dim 1", dt, ops::concat(gp, 1), ops::concat(rp, 1), 0, 0);
        // dim 0, the last dim (negative), and strided parts read in place.
        const Tensor p0 = rnd({3, 6}, 94), p1 = rnd({6, 2}, 95);
        std::vector<Tensor> g0 = {to_dev(p0, dt), to_dev(p1, dt).transpose(0, 1)};
        std::vector<Tensor> r0 = {rounded(p0, dt), rounded(p1, dt).transpose(0, 1)};
        check_result("concat dim 0 strided", dt, ops::concat(g0, 0), ops::concat(r0, 0), 0, 0);
        std::vector<Tensor> g1 = {to_dev(p0, dt).transpose(0, 1), to_dev(p1, dt)};
        std::vector<Tensor> r1 = {rounded(p0, dt).transpose(0, 1), rounded(p1, dt)};
        check_result("concat dim -1 strided", dt, ops::concat(g1, -1), ops::concat(r1, -1), 0, 0);
        std::vector<Tensor> ge = {to_dev(c, dt), to_dev(c, dt)};
        CHECK(ops::concat(ge, 0).shape() == Shape({4, 0, 5}));
    }
    // Any dtype: I64 parts (bit copy).
    Tensor ia = Tensor::empty({2, 3}, DType::I64), ib = Tensor::empty({2, 2}, DType::I64);
    for (int64_t i = 0; i < 6; ++i) ia.data<int64_t>()[i] = (int64_t(1) << 50) + i;
    for (int64_t i = 0; i < 4; ++i) ib.data<int64_t>()[i] = -i;
    CHECK(same_bits(ops::concat({ia.to(Device::CUDA), ib.to(Device::CUDA)}, 1).to(Device::CPU), ops::concat({ia, ib}, 1)));
}

SDXL_TEST(test_cuda_kernels_upsample_nearest) {
    if (!have_device()) return;
    struct Case {
        Shape in;
        int64_t oh, ow;
    };
    const Case cases[] = {{{2, 3, 8, 9}, 16, 18}, {{1, 2, 5, 7}, 7, 3}, {{1, 1, 3, 3}, 8, 10},
                          {{2, 4, 17, 13}, 17, 13}, {{1, 2, 1, 1}, 5, 4}, {{1, 3, 64, 64}, 100, 37},
                          {{0, 3, 4, 4}, 8, 8}};
    for (const Case& c : cases) {
        const Tensor x = rnd(c.in, 100);
        for (DType dt : kFloatTypes)
            check_result("upsample " + shape_str(c.in) + " -> " + std::to_string(c.oh) + "x" + std::to_string(c.ow),
                         dt, ops::upsample_nearest(to_dev(x, dt), c.oh, c.ow),
                         ops::upsample_nearest(rounded(x, dt), c.oh, c.ow), 0, 0);
    }
    // A strided input (device-side contiguous() first).
    const Tensor x = rnd({2, 3, 6, 5}, 101);
    check_result("upsample strided", DType::F32, ops::upsample_nearest2x(x.to(Device::CUDA).transpose(2, 3)),
                 ops::upsample_nearest2x(x.transpose(2, 3)), 0, 0);
}

SDXL_TEST(test_cuda_kernels_timestep_embedding) {
    if (!have_device()) return;
    Tensor tf = Tensor::empty({5}, DType::F32);
    const float ts[] = {0.0f, 1.0f, 999.0f, 500.5f, 17.25f};
    std::memcpy(tf.raw_data(), ts, sizeof(ts));
    Tensor ti = Tensor::empty({4}, DType::I64);
    const int64_t tsi[] = {0, 1, 999, 261};
    std::memcpy(ti.raw_data(), tsi, sizeof(tsi));
    for (const Tensor& t : {tf, ti}) {
        for (int dim : {320, 256, 7, 1, 2}) {
            for (bool flip : {false, true}) {
                const float shift = dim == 7 || dim == 2 ? 0.0f : 1.0f;  // half - shift must not be 0
                const Tensor ref = ops::timestep_embedding(t, dim, flip, shift, 1.0f, 10000.0f);
                const Tensor gpu = ops::timestep_embedding(t.to(Device::CUDA), dim, flip, shift, 1.0f, 10000.0f);
                // sin/cos of the same float arguments: the device's sinf/cosf are within 2 ulp.
                check_result("timestep_embedding " + std::string(dtype_name(t.dtype())) + " dim " +
                                 std::to_string(dim) + (flip ? " flip" : ""),
                             DType::F32, gpu, ref, 1e-6, 1e-6);
            }
        }
    }
    const Tensor none = Tensor::empty({0}, DType::F32, Device::CUDA);
    CHECK(ops::timestep_embedding(none, 8, true, 1.0f, 1.0f, 10000.0f).shape() == Shape({0, 8}));
}

// ---------------------------------------------------------------------------------------- large tensors

// More than 2^31 elements (F16, 4 GiB per tensor): 64-bit indexing in the binary, unary, copy and convert
// kernels. Checked on slices at the start and the end; skipped if the device lacks the memory.
SDXL_TEST(test_cuda_kernels_large_numel) {
    if (!have_device()) return;
#if defined(SDXL_CUDA_EMULATOR)
    // 2^31 elements through several kernels take minutes on the CPU emulator; the 64-bit index math this checks
    // runs on a GPU (tools/gpu/check.sh, ctest).
    std::cout << "  (skipped on the SIMT emulator: 2^31 elements)\n";
    return;
#endif
    const int64_t K = 4099, M = (int64_t(1) << 31) / K + 3;  // M * K > 2^31
    try {
        Tensor pat = Tensor::empty({K}, DType::F32);
        for (int64_t k = 0; k < K; ++k) pat.data<float>()[k] = float(k % 200) - 100.0f;
        Tensor rowv = Tensor::empty({M, 1}, DType::F32);
        for (int64_t m = 0; m < M; ++m) rowv.data<float>()[m] = float(m % 7 + 1);
        const Tensor zeros = Tensor::zeros({M, K}, DType::F16, Device::CUDA);
        // y[m, k] = (0 + pat[k]) * (m % 7 + 1), then scaled by 0.5: every step exact in F16 (|2 y| <= 700 < 2^11).
        Tensor y = ops::mul(ops::add(zeros, to_dev(pat, DType::F16)), to_dev(rowv, DType::F16));
        y = ops::scale(y, 0.5f, 0.0f);
        auto expect = [&](int64_t m, int64_t k) { return (float(k % 200) - 100.0f) * float(m % 7 + 1) * 0.5f; };
        for (int64_t m0 : {int64_t(0), M - 2}) {
            const Tensor rows = y.narrow(0, m0, 2).to(Device::CPU).to(DType::F32);  // offsets past 2^31 elements
            int64_t bad = 0;
            for (int64_t m = 0; m < 2; ++m)
                for (int64_t k = 0; k < K; ++k) bad += rows.data<float>()[m * K + k] != expect(m0 + m, k);
            CHECK_MSG(bad == 0, "large mul/add/scale rows " << m0 << ": " << bad << " wrong");
        }
        // Strided gather of the whole tensor (a transposed view) and a conversion, both past 2^31.
        const Tensor yt = y.transpose(0, 1).contiguous();  // [K, M]
        const Tensor tail = yt.narrow(0, K - 1, 1).narrow(1, M - 5, 5).to(DType::F32).to(Device::CPU);
        for (int64_t j = 0; j < 5; ++j)
            CHECK_MSG(tail.data<float>()[j] == expect(M - 5 + j, K - 1), "large transpose at " << j);
    } catch (const Error& e) {
        if (e.code() != ErrorCode::OUT_OF_MEMORY) throw;
        std::cout << "  (large-numel part skipped: " << e.message() << ")\n";
    }
}

// Random weights made on the device (sdxl_unet_perf's real-size UNet) hold the host's values: the same
// counter-based normals (core/counter_random.h); double log/cos may differ by an ulp on a GPU, so F32 within
// 1e-6 relative, F16/BF16 within one unit of the dtype's rounding; biases zero and norm scales one exactly.
SDXL_TEST(cuda_random_weights_match_host) {
    if (!have_device()) return;
    const nn::WeightBuilder host(nn::random_source(42, 1.0f));
    for (DType dt : kFloatTypes) {
        const nn::WeightBuilder dev(nn::random_source(42, 1.0f), {Device::CUDA, dt});
        for (const char* key : {"down.0.proj.weight", "conv_in.weight"}) {
            const Shape shape = std::string(key) == "conv_in.weight" ? Shape{40, 4, 3, 3} : Shape{77, 130};
            const Tensor want = host.get(key, shape);
            const Tensor got = back(dev.get(key, shape));
            const float* w = want.data<float>();
            const float* g = got.data<float>();
            const double rel = dt == DType::F32 ? 1e-6 : dt == DType::F16 ? 1.0 / 1024 : 1.0 / 128;
            double worst = 0;
            for (int64_t i = 0; i < want.numel(); ++i)
                worst = std::max(worst, std::fabs(double(g[i]) - w[i]) / (std::fabs(double(w[i])) + 1e-3));
            CHECK_MSG(worst <= rel, dtype_name(dt) << " " << key << ": worst relative difference " << worst);
        }
        const Tensor bias = back(dev.get("down.0.proj.bias", {130}));
        const Tensor scale = back(dev.get("norm.weight", {130}));
        bool exact = true;
        for (int64_t i = 0; i < 130; ++i) exact = exact && bias.data<float>()[i] == 0.0f && scale.data<float>()[i] == 1.0f;
        CHECK_MSG(exact, dtype_name(dt) << ": biases must be 0 and norm scales 1");
    }
}
