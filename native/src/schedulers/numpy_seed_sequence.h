// numpy.random.SeedSequence (numpy >= 1.17, bit_generator.pyx; unchanged through numpy 2.x), enough of it
// for torchsde's BrownianInterval: SeedSequence(entropy, spawn_key, pool_size).generate_state(n, uint32 or
// uint64). Entropy and spawn-key words are non-negative Python ints, each split into little-endian 32-bit
// words (0 is one word [0]). Checked against numpy in native/tests/test_seed_sequence.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sdxl::schedulers {

class NumpySeedSequence {
public:
    // entropy: the words of the `entropy` argument (an int given as its uint32 little-endian words, a
    // sequence as the concatenation of its elements' words); spawn_key likewise (a tuple of ints).
    NumpySeedSequence(std::vector<uint32_t> entropy, std::vector<uint32_t> spawn_key = {}, int pool_size = 4);

    // Words of a non-negative integer as numpy's _int_to_uint32_array gives them (0 -> {0}).
    static std::vector<uint32_t> int_words(uint64_t n);

    // generate_state(n_words, dtype=np.uint32)
    std::vector<uint32_t> generate_state_u32(size_t n_words) const;
    // generate_state(n_words, dtype=np.uint64): 2n uint32 words, pairs read as little-endian uint64.
    std::vector<uint64_t> generate_state_u64(size_t n_words) const;

    const std::vector<uint32_t>& pool() const { return pool_; }

private:
    std::vector<uint32_t> pool_;
};

}  // namespace sdxl::schedulers
