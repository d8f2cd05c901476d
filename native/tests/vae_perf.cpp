// Decode (or encode) latency of the real-size SDXL VAE (random weights made on the device from the real
// config, VaeConfig::sdxl()): one decode of batch 1 at 1024x1024 (latents 128x128) is what every SDXL image
// ends with. The native perf runner for the GPU machine (no JVM):
//
//   sdxl_vae_perf --device cuda --dtype bf16 [--size 1024] [--batch 1] [--iters 5] [--tiled [--tile PX]] [--encode]
//
// --tiled runs diffusers' tiled path (VAE_TILING_ALWAYS, tiles of --tile px, default the config's 1024 with
// overlap 0.25, so a 1024 image is 2x2 tiles). Prints each timed call and the median; the first two calls are
// warm-up (allocator, cuDNN algorithm choice). bf16 is the dtype to time: the SDXL VAE overflows in fp16
// (diffusers' force_upcast), and bf16 is what runs it without the fp32 upcast.
#include <algorithm>
#include <chrono>
#include <cmath>
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

bool all_finite(const Tensor& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    t.copy_to_floats(v.data(), t.numel());
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}
}  // namespace

int main(int argc, char** argv) {
    int device = DEVICE_CPU, dtype = DTYPE_F32, iters = 5;
    int64_t size = 1024, batch = 1, tile = 0;
    bool tiled = false, encode = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i], v = i + 1 < argc ? argv[i + 1] : "";
        if (a == "--device") { device = v == "cuda" ? DEVICE_CUDA : DEVICE_CPU; ++i; }
        else if (a == "--dtype") { dtype = v == "f16" ? DTYPE_F16 : v == "bf16" ? DTYPE_BF16 : DTYPE_F32; ++i; }
        else if (a == "--size") { size = std::stoll(v); ++i; }
        else if (a == "--batch") { batch = std::stoll(v); ++i; }
        else if (a == "--iters") { iters = std::max(1, std::stoi(v)); ++i; }
        else if (a == "--tile") { tile = std::stoll(v); tiled = true; ++i; }
        else if (a == "--tiled") tiled = true;
        else if (a == "--encode") encode = true;
        else {
            std::cerr << "usage: sdxl_vae_perf [--device cpu|cuda] [--dtype f32|f16|bf16] [--size PX] [--batch N] "
                         "[--iters N] [--tiled [--tile PX]] [--encode]\n";
            return 2;
        }
    }
    if (size <= 0 || size % 8 != 0 || batch <= 0) {
        std::cerr << "sdxl_vae_perf: --size must be a positive multiple of 8 and --batch positive\n";
        return 2;
    }
    if (device == DEVICE_CUDA && !cuda_available()) {
        std::cout << "vae perf: skipped, no CUDA device (" << cuda_status() << ")\n";
        return 0;
    }
    try {
        const VaeConfig config = VaeConfig::sdxl();
        const auto t_load = std::chrono::steady_clock::now();
        VaeModel vae = VaeModel::random(config, 0, device, dtype);
        vae.set_tiling(tiled ? VAE_TILING_ALWAYS : VAE_TILING_OFF, tile, 0.25);
        vae.set_oom_fallback(false);  // time what was asked for, or fail
        std::printf("built SDXL VAE (random weights) in %.1f s; %s, tiles of %lld px\n",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count(),
                    tiled ? "tiled" : "one pass", (long long)vae.tile_sample_size());
        std::mt19937 rng(7);
        const Tensor input = encode ? random_tensor({batch, 3, size, size}, rng, -1, 1)
                                    : random_tensor({batch, 4, size / 8, size / 8}, rng, -1, 1);
        std::vector<double> ms;
        bool finite = true;
        for (int i = 0; i < iters + 2; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            // Outputs come back to the host as F32: the call is synchronised.
            const Tensor out = encode ? vae.encode(input).get(0) : vae.decode(input);
            const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            std::printf("%s call %d: %.1f ms\n", i < 2 ? "warm-up" : "timed", i + 1, dt);
            if (i >= 2) ms.push_back(dt);
            if (i == 0) finite = all_finite(out);
        }
        std::sort(ms.begin(), ms.end());
        std::printf("SDXL VAE %s%s, %lldx%lld px, batch %lld, %s on %s: median %.1f ms (%d calls)%s\n",
                    encode ? "encode" : "decode", tiled ? " (tiled)" : "", (long long)size, (long long)size,
                    (long long)batch, dtype == DTYPE_F16 ? "fp16" : dtype == DTYPE_BF16 ? "bf16" : "fp32",
                    device == DEVICE_CUDA ? "cuda" : "cpu", ms[ms.size() / 2], iters,
                    finite ? "" : " [output not finite: random weights]");
    } catch (const std::exception& e) {
        std::cout << "vae perf FAILED: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
