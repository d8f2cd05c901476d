// Per-step latency of the real-size SDXL UNet (random weights from the real base config): one denoising step
// is one UNet call on the classifier-free-guidance batch of 2 at 1024x1024 (latents 128x128), context
// 77 x 2048. The native perf runner for the GPU machine (no JVM):
//
//   sdxl_unet_perf --device cuda --dtype f16 [--size 1024] [--batch 2] [--iters 10] [--refiner]
//                  [--graph on|off|both] [--profile]
//   sdxl_unet_perf --count-only --dtype bf16 [--size 1024] [--batch 2] [--predict h100]
//
// Prints each timed call and the median; the first two calls are warm-up (allocator, cuDNN algorithm choice;
// with CUDA graphs on, the second call is the capture). --graph: the UNet step as one CUDA graph per shape or
// eager (default: the library's default, on for CUDA F16/BF16); both: eager first, then graphs, on the same
// model and inputs, and the ratio.
// --profile: one more call, eager (graphs off: the op timer's events must not be captured), under the op profile
// (sdxl.h profile_start): per op family (attention, gemm, conv, norm, elementwise, copies) the calls, device
// calls (kernel launches + library calls + copies: what one CUDA graph of the step holds), GFLOP, GB, and the
// measured ms, TFLOP/s and GB/s (CUDA events per op, so that call is a little slower than the timed ones).
// --count-only: no computation at all (any machine, seconds): the model is built without weight values and the
// step's ops are counted on the CPU; bytes are stated for --dtype; --predict h100|h200 adds the time each family
// would take at stated fractions of that GPU's peaks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "sdxl/sdxl.h"

using namespace sdxl::api;

namespace {
Tensor random_tensor(const std::vector<int64_t>& shape, std::mt19937& rng, float lo, float hi) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    std::uniform_real_distribution<float> u(lo, hi);
    for (float& x : v) x = u(rng);
    return Tensor::from_floats(v.data(), shape);
}
}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line: a run killed by check.sh's time limit keeps its log
    int device = DEVICE_CPU, dtype = DTYPE_F32, iters = 10;
    int64_t size = 1024, batch = 2;
    bool refiner = false, profile = false, count_only = false;
    std::string predict, graph = "default";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i], v = i + 1 < argc ? argv[i + 1] : "";
        if (a == "--device") { device = v == "cuda" ? DEVICE_CUDA : DEVICE_CPU; ++i; }
        else if (a == "--dtype") { dtype = v == "f16" ? DTYPE_F16 : v == "bf16" ? DTYPE_BF16 : DTYPE_F32; ++i; }
        else if (a == "--size") { size = std::stoll(v); ++i; }
        else if (a == "--batch") { batch = std::stoll(v); ++i; }
        else if (a == "--iters") { iters = std::max(1, std::stoi(v)); ++i; }
        else if (a == "--refiner") refiner = true;
        else if (a == "--graph" && (v == "on" || v == "off" || v == "both")) { graph = v; ++i; }
        else if (a == "--profile") profile = true;
        else if (a == "--count-only") count_only = true;
        else if (a == "--predict") { predict = v; ++i; }
        else {
            std::cerr << "usage: sdxl_unet_perf [--device cpu|cuda] [--dtype f32|f16|bf16] [--size PX] [--batch N] "
                         "[--iters N] [--refiner] [--graph on|off|both] [--profile] [--count-only [--predict h100|h200]]\n";
            return 2;
        }
    }
    const double elt = dtype == DTYPE_F32 ? 4.0 : 2.0;
    if (count_only) device = DEVICE_CPU;  // nothing runs: the CPU backend's shapes are the same
    if (device == DEVICE_CUDA && !cuda_available()) {
        std::cout << "unet perf: skipped, no CUDA device (" << cuda_status() << ")\n";
        return 0;
    }
    try {
        const UNetConfig config = refiner ? UNetConfig::sdxl_refiner() : UNetConfig::sdxl_base();
        const auto t_load = std::chrono::steady_clock::now();
        if (count_only) profile_start(true, DEVICE_CPU);  // the model's weights get shapes, no values
        UNetModel unet = UNetModel::random(config, 0, device, count_only ? DTYPE_F32 : dtype);
        if (count_only) (void)profile_stop(0, "");
        std::printf("built SDXL %s UNet (random weights) in %.1f s\n", refiner ? "refiner" : "base",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count());
        std::mt19937 rng(7);
        const int64_t h = size / 8;
        const int64_t n_ids = refiner ? 5 : 6;
        Tensor sample = random_tensor({batch, 4, h, h}, rng, -1, 1);
        Tensor context = random_tensor({batch, 77, config.cross_attention_dim}, rng, -1, 1);
        Tensor pooled = random_tensor({batch, config.projection_class_embeddings_input_dim - n_ids * config.addition_time_embed_dim},
                                      rng, -1, 1);
        Tensor ids = random_tensor({batch, n_ids}, rng, 0, 1024);
        float t = 500.0f;
        Tensor timestep = Tensor::from_floats(&t, {});
        if (count_only) {
            profile_start(true, DEVICE_CPU);
            Tensor out = unet.forward(sample, timestep, context, pooled, ids);
            std::printf("SDXL %s UNet step, %lldx%lld px, batch %lld, counted for %s (no computation):\n%s",
                        refiner ? "refiner" : "base", (long long)size, (long long)size, (long long)batch,
                        dtype == DTYPE_F16 ? "fp16" : dtype == DTYPE_BF16 ? "bf16" : "fp32",
                        profile_stop(elt, predict).c_str());
            return 0;
        }
        const char* dt_name = dtype == DTYPE_F16 ? "fp16" : dtype == DTYPE_BF16 ? "bf16" : "fp32";
        auto measure = [&](const char* label) {
            std::vector<double> ms;
            for (int i = 0; i < iters + 2; ++i) {
                const auto t0 = std::chrono::steady_clock::now();
                Tensor out = unet.forward(sample, timestep, context, pooled, ids);  // returns to the host: synchronised
                const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
                std::printf("[%s] %s call %d: %.1f ms\n", label, i < 2 ? "warm-up" : "timed", i + 1, dt);
                if (i >= 2) ms.push_back(dt);
            }
            std::sort(ms.begin(), ms.end());
            const double median = ms[ms.size() / 2];
            std::printf("SDXL %s UNet, %lldx%lld px, batch %lld, %s on %s, %s: median %.1f ms per step (%d calls)\n",
                        refiner ? "refiner" : "base", (long long)size, (long long)size, (long long)batch, dt_name,
                        device == DEVICE_CUDA ? "cuda" : "cpu", label, median, iters);
            return median;
        };
        if (graph == "both") {
            unet.set_cuda_graphs(false);
            const double off = measure("graph off");
            unet.set_cuda_graphs(true);
            const double on = measure(device == DEVICE_CUDA ? "graph on" : "graph on (no effect on the CPU)");
            std::printf("CUDA graph speed-up (%s): %.3fx (eager %.1f ms -> graph %.1f ms per step)\n", dt_name, off / on,
                        off, on);
        } else {
            if (graph != "default") unet.set_cuda_graphs(graph == "on");
            (void)measure(unet.cuda_graphs() && device == DEVICE_CUDA ? "graph on" : "graph off");
        }
        if (profile) {
            unet.set_cuda_graphs(false);
            profile_start(false, device);
            Tensor out = unet.forward(sample, timestep, context, pooled, ids);
            std::printf("op profile of one more call, eager (CUDA events or wall clock per op):\n%s",
                        profile_stop(0, "").c_str());
        }
    } catch (const std::exception& e) {
        std::cout << "unet perf FAILED: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
