// The op profile (core/op_profile.h): the FLOPs and elements each op reports are checked against the formulas
// worked out by hand here; nested ops count once; a count-only run computes nothing yet gives the same counts as
// a real run; on CUDA (the emulator in CI) device calls are counted and every family with work gets time.
#include <cmath>
#include <string>

#include "check.h"
#include "core/device.h"
#include "core/op_profile.h"
#include "core/tensor.h"
#include "ops/ops.h"
#include "test_tensors.h"

using namespace sdxl;
using profile::Family;

namespace {

// A small transformer-ish sequence touching every family: ~what one attention block does.
Tensor run_ops(Device dev) {
    const Tensor x = sdxl_test::rnd({2, 6, 8}, 1).to(dev);      // [N, L, C]
    const Tensor w = sdxl_test::rnd({12, 8}, 2).to(dev);        // [out, in]
    const Tensor b = sdxl_test::rnd({12}, 3).to(dev);
    const Tensor img = sdxl_test::rnd({2, 4, 5, 5}, 4).to(dev);  // [N, C, H, W]
    const Tensor k = sdxl_test::rnd({3, 4, 3, 3}, 5).to(dev);   // [O, C, 3, 3]
    Tensor h = ops::linear(x, w, b);                                   // [2, 6, 12]
    const Tensor q = h.view({2, 6, 2, 6}).permute({0, 2, 1, 3});       // [2, 2, 6, 6] (strided view)
    Tensor a = ops::attention(q, q, q, Tensor(), false, 0.0f);         // [2, 2, 6, 6]
    a = ops::add(a, a);                                                // [2, 2, 6, 6]
    const Tensor c = ops::conv2d(img, k, Tensor(), 1, 1);              // [2, 3, 5, 5]
    const Tensor n = ops::group_norm_silu(c, 3, Tensor(), Tensor(), 1e-5f);
    return ops::concat({a.contiguous().view({2, 72}), n.view({2, 75})}, 1);  // [2, 147]
}

void check_counts(const profile::Report& r, const char* what) {
    using F = profile::Family;
    const auto& f = r.families;
    // linear: 2 * M * N * K = 2 * 12 * 12 * 8; elements x 96 + w 96 + b 12 + out 144
    CHECK_MSG(f[size_t(F::GEMM)].calls == 1 && f[size_t(F::GEMM)].flops == 2.0 * 12 * 12 * 8 &&
                  f[size_t(F::GEMM)].elements == 96 + 96 + 12 + 144,
              what << ": gemm " << f[size_t(F::GEMM)].calls << " calls " << f[size_t(F::GEMM)].flops << " flops "
                   << f[size_t(F::GEMM)].elements << " elements");
    // attention: 2 * B*H * Lq * Lk * (D + Dv) = 2 * 4 * 6 * 6 * 12; q, k, v, out 144 each
    CHECK_MSG(f[size_t(F::ATTENTION)].calls == 1 && f[size_t(F::ATTENTION)].flops == 2.0 * 4 * 6 * 6 * 12 &&
                  f[size_t(F::ATTENTION)].elements == 4 * 144,
              what << ": attention " << f[size_t(F::ATTENTION)].flops << " flops");
    // conv: 2 * out elements * C*kh*kw = 2 * 150 * 36; x 200 + w 108 + out 150
    CHECK_MSG(f[size_t(F::CONV)].calls == 1 && f[size_t(F::CONV)].flops == 2.0 * 150 * 36 &&
                  f[size_t(F::CONV)].elements == 200 + 108 + 150,
              what << ": conv " << f[size_t(F::CONV)].flops << " flops " << f[size_t(F::CONV)].elements);
    CHECK_MSG(f[size_t(F::NORM)].calls == 1 && f[size_t(F::NORM)].elements == 300, what << ": norm");
    CHECK_MSG(f[size_t(F::ELEMENTWISE)].calls == 1 && f[size_t(F::ELEMENTWISE)].elements == 3 * 144,
              what << ": elementwise");
    // copies: the inputs' to(dev) on CUDA (5) and concat (a is contiguous already: no copy)
    const int64_t uploads = r.device == Device::CUDA ? 5 : 0;
    CHECK_MSG(f[size_t(F::COPY)].calls == 1 + uploads,
              what << ": copies " << f[size_t(F::COPY)].calls << " (expected " << 1 + uploads << ")");
}

}  // namespace

SDXL_TEST(test_op_profile_counts_cpu) {
    profile::start(false, Device::CPU);
    const Tensor out = run_ops(Device::CPU);
    const profile::Report r = profile::stop();
    CHECK(out.shape() == Shape({2, 147}));
    check_counts(r, "cpu");
    CHECK(r.families[size_t(Family::GEMM)].device_calls == 0);  // the CPU backend makes no device calls
    const std::string table = profile::format(r, 0);
    CHECK_MSG(table.find("attention") != std::string::npos && table.find("total") != std::string::npos, table);
    CHECK(!profile::active());
    // A second start while one runs is refused; stopping twice too.
    profile::start(true, Device::CPU);
    bool refused = false;
    try {
        profile::start(true, Device::CPU);
    } catch (const Error&) {
        refused = true;
    }
    CHECK(refused);
    (void)profile::stop();
    refused = false;
    try {
        (void)profile::stop();
    } catch (const Error&) {
        refused = true;
    }
    CHECK(refused);
}

SDXL_TEST(test_op_profile_count_only_computes_nothing) {
    // The same counts as the real run, and outputs of the right shape that were never written: a count-only
    // linear of a huge matrix returns at once.
    profile::start(true, Device::CPU);
    const Tensor out = run_ops(Device::CPU);
    const Tensor big = ops::linear(Tensor::empty({4096, 8192}, DType::F32), Tensor::empty({8192, 8192}, DType::F32),
                                   Tensor());  // 550 GFLOP: minutes if it ran
    const profile::Report r = profile::stop();
    CHECK(out.shape() == Shape({2, 147}));
    CHECK(big.shape() == Shape({4096, 8192}));
    CHECK(r.count_only);
    CHECK(r.families[size_t(Family::GEMM)].calls == 2);
    CHECK(r.families[size_t(Family::GEMM)].flops == 2.0 * 12 * 12 * 8 + 2.0 * 4096 * 8192 * 8192);
    CHECK(r.families[size_t(Family::GEMM)].ms == 0);
    // After the profile, ops compute again.
    Tensor one = Tensor::empty({1, 1}, DType::F32);
    one.data<float>()[0] = 1.0f;
    CHECK(ops::linear(one, one, Tensor()).data<float>()[0] == 1.0f);
}

SDXL_TEST(test_op_profile_cuda_device_calls_and_time) {
    if (!device::cuda_available()) {
        std::cout << "  (skipped: " << device::cuda_status() << ")\n";
        return;
    }
    profile::start(false, Device::CUDA);
    const Tensor out = run_ops(Device::CUDA);
    const profile::Report r = profile::stop();
    CHECK(out.shape() == Shape({2, 147}));
    check_counts(r, "cuda");
    for (Family f : {Family::GEMM, Family::ATTENTION, Family::CONV, Family::NORM, Family::ELEMENTWISE, Family::COPY}) {
        const auto& t = r.families[size_t(f)];
        CHECK_MSG(t.device_calls >= t.calls, profile::family_name(f) << ": " << t.device_calls << " device calls for "
                                                                     << t.calls << " op calls");
        CHECK_MSG(t.ms >= 0 && std::isfinite(t.ms), profile::family_name(f) << ": " << t.ms << " ms");
    }
    // Bytes use each tensor's dtype: F32 here, so 4 bytes per element.
    CHECK(r.families[size_t(Family::GEMM)].bytes == 4 * r.families[size_t(Family::GEMM)].elements);
}
