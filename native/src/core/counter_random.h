// The counter-based N(0, 1) values behind random weights (nn/weights.cpp): element i of a tensor is a pure
// function of (base, i), so the host fills any tensor in parallel and a device kernel fills it in place
// (backends/cuda/cuda_misc.cu) with the same values up to the last ulp of log/cos. splitmix64 of base + i * phi,
// then one Box-Muller draw from 26 + 26 bits. Header-only and callable from host and device code.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(SDXL_CUDA_EMULATOR)
#define SDXL_HOST_DEVICE __host__ __device__
#else
#define SDXL_HOST_DEVICE
#endif

namespace sdxl::counter_random {

constexpr uint64_t kPhi = 0x9E3779B97F4A7C15ull;

SDXL_HOST_DEVICE inline double normal(uint64_t base, uint64_t i) {
    uint64_t z = base + i * kPhi;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const double u1 = (double((z >> 11) & ((1ull << 26) - 1)) + 0.5) / double(1ull << 26);
    const double u2 = double(z >> 38) / double(1ull << 26);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

}  // namespace sdxl::counter_random
