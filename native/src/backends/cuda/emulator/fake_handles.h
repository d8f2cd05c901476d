// The table of live handles shared by the fake libraries (fake_cublas.cpp, fake_cudnn.cpp): a handle is used by
// one thread at a time (both libraries' documented thread-safety rule), but handles may be created and
// destroyed from several threads, so the table has a lock. Never destroyed: calls may come during exit.
#pragma once

#include <mutex>
#include <set>

namespace sdxl_emu {

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

}  // namespace sdxl_emu
