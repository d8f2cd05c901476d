// Per-op-family accounting: what a forward pass asks of the hardware, counted by the ops themselves.
//
// Each op entry point (ops/ops.cpp) and each tensor copy (core/tensor.cpp) opens a Scope naming its family,
// its FLOPs and the elements it reads and writes (an op's mathematical inputs and outputs; a backend's own
// temporaries are not counted). While a profile runs, the scope also counts the device calls made inside it
// (kernel launches, library calls and device copies: what one CUDA graph of the step would hold) and times
// it: wall time on the CPU, a pair of CUDA events on the backend's stream on CUDA (read when the profile
// stops, so the timed run is not serialised by the measurement beyond the events themselves). Nested scopes
// (an op that calls another op) count once, in the outermost scope.
//
// Count-only mode ("dry run"): ops return uninitialised outputs of the right shape and compute nothing, tensor
// copies copy nothing, and random-weight models built meanwhile get uninitialised weights. The FLOPs, bytes
// and call counts of a real-size SDXL step at 1024x1024 can so be counted in seconds on any machine; the
// numbers of a dry run are meaningless, its counts are exact.
//
// Not thread-safe against concurrent profiled work: profile one forward pass at a time (the perf runners).
// When no profile runs, a Scope costs one relaxed atomic load.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "core/device.h"

namespace sdxl::profile {

enum class Family : int { ATTENTION = 0, GEMM, CONV, NORM, ELEMENTWISE, COPY, COUNT };
constexpr int kFamilies = int(Family::COUNT);
const char* family_name(Family f);

struct FamilyTotals {
    int64_t calls = 0;          // outermost op calls
    int64_t device_calls = 0;   // kernel launches + library calls + device copies inside them
    double flops = 0;           // multiply-adds count 2
    double elements = 0;        // elements read + written (bytes = elements x the dtype's size)
    double bytes = 0;           // the same in bytes, with each tensor's own dtype
    double ms = 0;              // measured time (0 in count-only mode)
};

struct Report {
    std::array<FamilyTotals, kFamilies> families{};
    int64_t device_calls_outside = 0;  // device calls not inside any op scope (input copies, ...)
    bool count_only = false;
    Device device = Device::CPU;
};

namespace detail {
extern std::atomic<bool> g_active;
extern std::atomic<bool> g_dry;
extern std::atomic<int64_t> g_device_calls;
}  // namespace detail

inline bool active() { return detail::g_active.load(std::memory_order_relaxed); }
// True only while a count-only profile runs: ops must return uninitialised results and compute nothing.
inline bool dry_run() { return detail::g_dry.load(std::memory_order_relaxed); }
// Called by the CUDA backend for every kernel launch, library call and device copy.
inline void count_device_call() {
    if (active()) detail::g_device_calls.fetch_add(1, std::memory_order_relaxed);
}

// Starts a profile (INVALID_STATE-like INVALID_ARGUMENT if one already runs). device: where timing happens
// (CUDA events on Device::CUDA).
void start(bool count_only, Device device);
// Stops the profile and returns its totals (waits for the device to finish its timed work first).
Report stop();
// A fixed-width table: per family calls, device calls, GFLOP, GB, and (when timed) ms, TFLOP/s, GB/s; then
// totals. bytes_per_element > 0 reports bytes as elements x that size (e.g. 2 for an f16 step counted in a
// count-only run on the CPU's F32), else each tensor's own size.
std::string format(const Report& r, double bytes_per_element);
// The same families' predicted time on a device given peak rates (dense tensor TFLOP/s, memory GB/s) and the
// fraction of each a tuned kernel reaches: per family max(flops / (peak x eff), bytes / (bw x eff_mem)).
std::string format_prediction(const Report& r, double bytes_per_element, const std::string& device_name,
                              double peak_tflops, double peak_gbps);

class Scope {
public:
    // flops and elements of this call; `device` says how to time it.
    Scope(Family family, double flops, double elements, double bytes, Device device) {
        if (active()) begin(family, flops, elements, bytes, device);
    }
    ~Scope() {
        if (entered_) end();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

private:
    void begin(Family family, double flops, double elements, double bytes, Device device);
    void end();
    bool entered_ = false;  // counted in this thread's scope depth
    bool open_ = false;     // the outermost scope: its totals are recorded
    Family family_ = Family::ELEMENTWISE;
    Device device_ = Device::CPU;
    int64_t calls_before_ = 0;
    int event_ = -1;       // CUDA: index of the start event
    double t0_ms_ = 0;     // CPU: wall clock at the start
};

}  // namespace sdxl::profile
