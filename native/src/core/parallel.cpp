#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sdxl {
namespace {

thread_local bool in_worker = false;

class Pool {
public:
    explicit Pool(int n) { resize(n); }
    ~Pool() { stop(); }

    int size() const { return int(workers_.size()) + 1; }  // the caller works too

    void resize(int n) {
        stop();
        stopping_ = false;
        for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this] { loop(); });
    }

    void run(int64_t chunks, const std::function<void(int64_t)>& task) {
        std::unique_lock<std::mutex> lock(run_mutex_);  // one parallel region at a time
        {
            std::lock_guard<std::mutex> g(m_);
            task_ = &task;
            total_ = chunks;
            next_ = 0;
            done_ = 0;
            error_ = nullptr;
            ++generation_;
        }
        cv_.notify_all();
        work();
        std::unique_lock<std::mutex> g(m_);
        done_cv_.wait(g, [&] { return done_ == total_; });
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    void stop() {
        {
            std::lock_guard<std::mutex> g(m_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    void loop() {
        in_worker = true;
        uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> g(m_);
                cv_.wait(g, [&] { return stopping_ || generation_ != seen; });
                if (stopping_) return;
                seen = generation_;
            }
            work();
        }
    }

    void work() {
        bool was = in_worker;
        in_worker = true;
        for (;;) {
            int64_t i;
            const std::function<void(int64_t)>* task;
            {
                std::lock_guard<std::mutex> g(m_);
                if (!task_ || next_ >= total_) break;
                i = next_++;
                task = task_;
            }
            try {
                (*task)(i);
            } catch (...) {
                std::lock_guard<std::mutex> g(m_);
                if (!error_) error_ = std::current_exception();
            }
            std::lock_guard<std::mutex> g(m_);
            if (++done_ == total_) done_cv_.notify_all();
        }
        in_worker = was;
    }

    std::vector<std::thread> workers_;
    std::mutex run_mutex_, m_;
    std::condition_variable cv_, done_cv_;
    const std::function<void(int64_t)>* task_ = nullptr;
    int64_t total_ = 0, next_ = 0, done_ = 0;
    uint64_t generation_ = 0;
    bool stopping_ = false;
    std::exception_ptr error_;
};

int default_threads() {
    if (const char* env = std::getenv("SDXL_NUM_THREADS")) {
        int n = std::atoi(env);
        if (n > 0) return n;
    }
    return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex pool_mutex;
Pool& pool() {
    static Pool p(default_threads());
    return p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
    std::lock_guard<std::mutex> g(pool_mutex);
    pool().resize(std::max(1, n));
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    int threads = in_worker ? 1 : num_threads();
    int64_t chunks = std::min<int64_t>(threads * 4, (n + grain - 1) / grain);
    if (chunks <= 1 || in_worker) {  // nested calls run inline (parallel.h): the pool runs one region at a time
        body(0, n);
        return;
    }
    int64_t step = (n + chunks - 1) / chunks;
    chunks = (n + step - 1) / step;
    pool().run(chunks, [&](int64_t c) { body(c * step, std::min(n, (c + 1) * step)); });
}

}  // namespace sdxl
