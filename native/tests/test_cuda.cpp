// CUDA skeleton: device memory, copies and the first kernels against the CPU backend. Skipped (and said so)
// where no device is usable, e.g. on the CI machine.
#include <cmath>
#include <iostream>
#include <random>
#include <string>
#include <thread>

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

// One CUDA device per process: the same ordinal again is accepted, one that does not exist is refused by name;
// work from a new thread runs (the thread binds itself to the process's device).
SDXL_TEST(test_cuda_device_selection) {
    if (!device::cuda_available()) {
        if (device::cuda_compiled()) CHECK_THROWS_CODE(device::select_cuda_device(0), ErrorCode::DEVICE_ERROR);
        else CHECK_THROWS_CODE(device::select_cuda_device(0), ErrorCode::UNSUPPORTED);
        return;
    }
    const int d = device::cuda_device();
    Tensor h = Tensor::empty({8}, DType::F32);
    for (int64_t i = 0; i < 8; ++i) h.data<float>()[i] = float(i);
    Tensor x = h.to(Device::CUDA);  // CUDA work has run: the device is fixed now
    device::select_cuda_device(d);
    CHECK_THROWS_CODE(device::select_cuda_device(-1), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(device::select_cuda_device(1000), ErrorCode::INVALID_ARGUMENT);
    CHECK(device::cuda_status().find("using device " + std::to_string(d)) != std::string::npos);
    float sum = 0.0f;
    std::thread([&] {
        Tensor y = ops::add(x, x).to(Device::CPU);
        for (int64_t i = 0; i < 8; ++i) sum += y.data<float>()[i];
    }).join();
    CHECK(sum == 56.0f);  // 2 * (0 + 1 + ... + 7)
}
