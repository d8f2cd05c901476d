// What the fake libraries (fake_cublas.cpp, fake_cublaslt.cpp, fake_cudnn.cpp) share: the table of live handles,
// and element access for the F32/F16/BF16 data they compute on (fp32 arithmetic, one round-to-nearest-even store).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>

#include "core/half.h"

namespace sdxl_emu {

// Live handles: a handle is used by one thread at a time (both libraries' documented thread-safety rule), but
// handles may be created and destroyed from several threads, so the table has a lock. Never destroyed: calls
// may come during exit.
template <typename Context>
class LiveHandles {
public:
    static LiveHandles& instance() {
        static LiveHandles* t = new LiveHandles();
        return *t;
    }
    void add(const Context* h) {
        std::lock_guard<std::mutex> lock(mu_);
        set_.insert(h);
    }
    bool remove(const Context* h) {
        std::lock_guard<std::mutex> lock(mu_);
        return h && set_.erase(h) != 0;
    }
    bool live(const Context* h) {
        if (!h) return false;
        std::lock_guard<std::mutex> lock(mu_);
        return set_.count(h) != 0;
    }

private:
    std::mutex mu_;
    std::set<const Context*> set_;
};

// Element types of the configurations the fakes compute.
enum class Ty { F32, F16, BF16 };

inline size_t ty_size(Ty t) { return t == Ty::F32 ? 4 : 2; }

inline float load(const void* base, int64_t i, Ty t) {
    switch (t) {
        case Ty::F32: return static_cast<const float*>(base)[i];
        case Ty::F16: return sdxl::f16_to_f32(static_cast<const uint16_t*>(base)[i]);
        case Ty::BF16: return sdxl::bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    }
    return 0.0f;
}

inline void store(void* base, int64_t i, Ty t, float v) {
    switch (t) {
        case Ty::F32: static_cast<float*>(base)[i] = v; return;
        case Ty::F16: static_cast<uint16_t*>(base)[i] = sdxl::f32_to_f16(v); return;
        case Ty::BF16: static_cast<uint16_t*>(base)[i] = sdxl::f32_to_bf16(v); return;
    }
}

}  // namespace sdxl_emu
