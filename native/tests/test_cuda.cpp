// CUDA skeleton: device memory, copies and the first kernels against the CPU backend. Skipped (and said so)
// where no device is usable, e.g. on the CI machine.
#include <cmath>
#include <iostream>
#include <random>

#include "check.h"
#include "core/device.h"
#include "core/tensor.h"
#include "ops/ops.h"

using namespace sdxl;

SDXL_TEST(test_cuda_elementwise_matches_cpu) {
    if (!device::cuda_available()) {
        std::cout << "  (skipped: " << device::cuda_status() << ")\n";
        if (device::cuda_compiled()) {
            // Without a device, asking for one must be a clean error, never a crash.
            Tensor t = Tensor::zeros({4}, DType::F32);
            CHECK_THROWS_CODE(t.to(Device::CUDA), ErrorCode::DEVICE_ERROR);
        }
        return;
    }
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    Tensor a = Tensor::empty({2, 3, 33, 17}, DType::F32);
    Tensor b = Tensor::empty({3, 1, 17}, DType::F32);
    for (int64_t i = 0; i < a.numel(); ++i) a.data<float>()[i] = nd(rng);
    for (int64_t i = 0; i < b.numel(); ++i) b.data<float>()[i] = nd(rng);
    Tensor ga = a.to(Device::CUDA), gb = b.to(Device::CUDA);
    struct Case {
        const char* name;
        Tensor cpu, gpu;
    };
    Case cases[] = {
        {"add", ops::add(a, b), ops::add(ga, gb)},
        {"mul", ops::mul(a, b), ops::mul(ga, gb)},
        {"sub", ops::sub(a, b), ops::sub(ga, gb)},
        {"scale", ops::scale(a, 0.5f, -1.0f), ops::scale(ga, 0.5f, -1.0f)},
        {"silu", ops::silu(a), ops::silu(ga)},
    };
    for (auto& c : cases) {
        Tensor back = c.gpu.to(Device::CPU);
        CHECK(back.shape() == c.cpu.shape());
        double max_err = 0;
        for (int64_t i = 0; i < back.numel(); ++i)
            max_err = std::max(max_err, double(std::fabs(back.data<float>()[i] - c.cpu.data<float>()[i])));
        // add/sub/mul/scale are exact in fp32; silu may differ by the device expf's last-ulp error.
        CHECK_MSG(max_err <= 1e-6, c.name << " max error " << max_err);
    }
    // conv2d (cuDNN) and linear/matmul (cuBLAS) are checked in test_cuda_libs.cpp.
}
