// sdxl::Generator: torch.Generator("cpu") + torch.randn(..., dtype=float32), reproduced bit for bit so that a
// seed gives diffusers' latents on any machine (DESIGN.md, "Random numbers"; reference: cases/rng).
//
// What torch does (ATen CPUGeneratorImpl + native/cpu/DistributionTemplates.h, unchanged from 1.13 to 2.x):
//  * manual_seed(s): mt19937 initialised from the LOW 32 BITS of the 64-bit seed (so 2^32-1, 2^63-1 and
//    2^64-1 give the same stream) and the cached normal sample dropped.
//  * randn of n >= 16 floats: n uniform floats (24 bits of one 32-bit draw each), then Box-Muller over blocks
//    of 16 (u1 = 1 - x[j], u2 = x[j + 8], j < 8). When n % 16 != 0, 16 FRESH uniforms overwrite the last 16
//    slots and that block is transformed again. On x86 with AVX2 (also on AVX-512 machines: normal_stub is
//    not dispatched to AVX-512) log/sin/cos come from avx_mathfun.h (Cephes polynomials in float, with
//    the multiply-adds GCC fused into FMAs); we replay those exact float operations in portable scalar
//    code, so the result depends neither on libm nor on the CPU. (torch's own non-AVX2 kernel, e.g. on
//    ARM, calls libm logf/sinf/cosf instead and differs from x86 torch in the last bits.)
//  * randn of n < 16 floats: per element at::normal_distribution<double>: two 53-bit uniforms from one 64-bit
//    draw each, Box-Muller in double, the sine half cached in the generator for the next element (and for
//    the next small draw: the cache survives between calls), rounded to float.
#pragma once

#include <cstdint>
#include <random>

#include "core/tensor.h"

namespace sdxl {

class Generator {
public:
    // torch's default seed (c10::detail::default_rng_seed_val), so a default Generator matches torch's.
    static constexpr uint64_t kDefaultSeed = 67280421310721ULL;

    explicit Generator(uint64_t seed = kDefaultSeed) { manual_seed(seed); }

    // torch.Generator.manual_seed: restarts the stream; any seed (negative Python seeds are their two's
    // complement) works, only its low 32 bits reach mt19937.
    void manual_seed(uint64_t seed);
    uint64_t initial_seed() const { return seed_; }

    // CPUGeneratorImpl::random / random64 (the first 32-bit draw is the high half).
    uint32_t random();
    uint64_t random64();

    // torch.randn(n, generator=this, dtype=float32) into out[0..n). The state advances as torch's does.
    void randn(float* out, int64_t n);
    // A new contiguous F32 CPU tensor of `shape`, filled as torch.randn(shape) fills it (row-major order).
    Tensor randn(const Shape& shape);

    // Copies (copy constructor / assignment) duplicate the full state: both continue the same stream.

private:
    double normal_double();  // at::normal_distribution<double>(0, 1), with the sample cache

    std::mt19937 engine_;  // the standard fixes mt19937 bit for bit; torch's engine is the same generator
    uint64_t seed_ = 0;
    bool has_cached_normal_ = false;
    double cached_normal_ = 0.0;
};

}  // namespace sdxl
