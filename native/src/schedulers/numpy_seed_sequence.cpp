// numpy SeedSequence: entropy assembly, the hashmix/mix pool mixing and generate_state (see the header).
#include "schedulers/numpy_seed_sequence.h"

#include "core/error.h"

namespace sdxl::schedulers {
namespace {

constexpr uint32_t kInitA = 0x43b0d7e5u;
constexpr uint32_t kMultA = 0x931e8875u;
constexpr uint32_t kInitB = 0x8b51f9ddu;
constexpr uint32_t kMultB = 0x58f38dedu;
constexpr uint32_t kMixMultL = 0xca01f9ddu;
constexpr uint32_t kMixMultR = 0x4973f715u;
constexpr unsigned kXShift = 16;  // 4 * 8 / 2

uint32_t hashmix(uint32_t value, uint32_t& hash_const) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    value ^= value >> kXShift;
    return value;
}

uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t r = kMixMultL * x - kMixMultR * y;
    r ^= r >> kXShift;
    return r;
}

}  // namespace

std::vector<uint32_t> NumpySeedSequence::int_words(uint64_t n) {
    std::vector<uint32_t> w;
    if (n == 0) w.push_back(0);
    while (n > 0) {
        w.push_back(uint32_t(n & 0xffffffffu));
        n >>= 32;
    }
    return w;
}

NumpySeedSequence::NumpySeedSequence(std::vector<uint32_t> entropy, std::vector<uint32_t> spawn_key,
                                     int pool_size) {
    if (pool_size < 4) fail(ErrorCode::INVALID_ARGUMENT, "SeedSequence: pool_size ", pool_size, " < 4");
    // get_assembled_entropy: with a spawn key, the run entropy is zero-padded to the pool size first.
    std::vector<uint32_t> e = std::move(entropy);
    if (!spawn_key.empty() && e.size() < size_t(pool_size)) e.resize(size_t(pool_size), 0u);
    e.insert(e.end(), spawn_key.begin(), spawn_key.end());
    // mix_entropy
    pool_.assign(size_t(pool_size), 0u);
    uint32_t hash_const = kInitA;
    for (size_t i = 0; i < pool_.size(); ++i) pool_[i] = hashmix(i < e.size() ? e[i] : 0u, hash_const);
    for (size_t src = 0; src < pool_.size(); ++src)
        for (size_t dst = 0; dst < pool_.size(); ++dst)
            if (src != dst) pool_[dst] = mix(pool_[dst], hashmix(pool_[src], hash_const));
    for (size_t src = pool_.size(); src < e.size(); ++src)
        for (size_t dst = 0; dst < pool_.size(); ++dst) pool_[dst] = mix(pool_[dst], hashmix(e[src], hash_const));
}

std::vector<uint32_t> NumpySeedSequence::generate_state_u32(size_t n_words) const {
    std::vector<uint32_t> out(n_words);
    uint32_t hash_const = kInitB;
    for (size_t i = 0; i < n_words; ++i) {
        uint32_t v = pool_[i % pool_.size()];
        v ^= hash_const;
        hash_const *= kMultB;
        v *= hash_const;
        v ^= v >> kXShift;
        out[i] = v;
    }
    return out;
}

std::vector<uint64_t> NumpySeedSequence::generate_state_u64(size_t n_words) const {
    const std::vector<uint32_t> w = generate_state_u32(2 * n_words);
    std::vector<uint64_t> out(n_words);
    for (size_t i = 0; i < n_words; ++i) out[i] = uint64_t(w[2 * i]) | (uint64_t(w[2 * i + 1]) << 32);
    return out;
}

}  // namespace sdxl::schedulers
