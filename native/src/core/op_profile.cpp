// Per-op-family accounting (core/op_profile.h).
#include "core/op_profile.h"

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace sdxl::profile {

namespace detail {
std::atomic<bool> g_active{false};
std::atomic<bool> g_dry{false};
std::atomic<int64_t> g_device_calls{0};
}  // namespace detail

namespace {

struct Pending {  // a timed CUDA scope, read when the profile stops
    Family family;
    int begin, end;
};

struct State {
    std::mutex mu;
    Report report;
    std::vector<Pending> pending;
    int64_t calls_in_scopes = 0;
};

State& state() {
    static State* s = new State();
    return *s;
}

thread_local int t_depth = 0;  // open scopes on this thread; only the outermost one counts

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

const char* family_name(Family f) {
    switch (f) {
        case Family::ATTENTION: return "attention";
        case Family::GEMM: return "gemm";
        case Family::CONV: return "conv";
        case Family::NORM: return "norm";
        case Family::ELEMENTWISE: return "elementwise";
        case Family::COPY: return "copies";
        case Family::COUNT: break;
    }
    return "?";
}

void start(bool count_only, Device device) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    SDXL_CHECK(!detail::g_active.load(), "op profile: a profile is already running; stop it first");
    s.report = Report{};
    s.report.count_only = count_only;
    s.report.device = device;
    s.pending.clear();
    s.calls_in_scopes = 0;
    if (device == Device::CUDA && !count_only) device::cuda_timer_reset();
    detail::g_device_calls.store(0);
    detail::g_dry.store(count_only);
    detail::g_active.store(true);
}

Report stop() {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    SDXL_CHECK(detail::g_active.load(), "op profile: no profile is running");
    detail::g_active.store(false);
    detail::g_dry.store(false);
    for (const Pending& p : s.pending)
        s.report.families[size_t(p.family)].ms += device::cuda_timer_elapsed_ms(p.begin, p.end);
    s.pending.clear();
    s.report.device_calls_outside = detail::g_device_calls.load() - s.calls_in_scopes;
    return s.report;
}

void Scope::begin(Family family, double flops, double elements, double bytes, Device device) {
    entered_ = true;
    if (t_depth++ > 0) return;  // nested: the outer scope counts it
    open_ = true;
    family_ = family;
    device_ = device;
    State& s = state();
    {
        std::lock_guard<std::mutex> lock(s.mu);
        FamilyTotals& f = s.report.families[size_t(family)];
        f.calls += 1;
        f.flops += flops;
        f.elements += elements;
        f.bytes += bytes;
    }
    calls_before_ = detail::g_device_calls.load(std::memory_order_relaxed);
    if (dry_run()) return;
    if (device == Device::CUDA) event_ = device::cuda_timer_mark();
    else t0_ms_ = now_ms();
}

void Scope::end() {
    --t_depth;
    State& s = state();
    if (!open_ || !active()) return;  // nested, or the profile stopped inside the scope: nothing to add
    int end_event = -1;
    double dt = 0;
    if (!dry_run()) {
        try {
            if (device_ == Device::CUDA) end_event = device::cuda_timer_mark();
            else dt = now_ms() - t0_ms_;
        } catch (...) {  // a destructor never throws: a failed mark loses this scope's time only
            end_event = -1;
        }
    }
    const int64_t calls = detail::g_device_calls.load(std::memory_order_relaxed) - calls_before_;
    std::lock_guard<std::mutex> lock(s.mu);
    FamilyTotals& f = s.report.families[size_t(family_)];
    f.device_calls += calls;
    f.ms += dt;
    s.calls_in_scopes += calls;
    if (event_ >= 0 && end_event >= 0) s.pending.push_back({family_, event_, end_event});
}

namespace {

double family_bytes(const FamilyTotals& f, double bytes_per_element) {
    return bytes_per_element > 0 ? f.elements * bytes_per_element : f.bytes;
}

void append(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void append(std::string& out, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    out += buf;
}

}  // namespace

std::string format(const Report& r, double bytes_per_element) {
    const bool timed = !r.count_only;
    std::string out;
    append(out, "%-12s %7s %8s %10s %9s", "family", "calls", "dev.calls", "GFLOP", "GB");
    if (timed) append(out, " %10s %6s %9s %8s", "ms", "%time", "TFLOP/s", "GB/s");
    out += "\n";
    FamilyTotals total;
    for (const FamilyTotals& f : r.families) {
        total.calls += f.calls;
        total.device_calls += f.device_calls;
        total.flops += f.flops;
        total.elements += f.elements;
        total.bytes += f.bytes;
        total.ms += f.ms;
    }
    auto row = [&](const char* name, const FamilyTotals& f) {
        const double gb = family_bytes(f, bytes_per_element) / 1e9;
        append(out, "%-12s %7lld %8lld %10.1f %9.2f", name, (long long)f.calls, (long long)f.device_calls,
               f.flops / 1e9, gb);
        if (timed) {
            const double s = f.ms / 1e3;
            append(out, " %10.2f %5.1f%% %9.2f %8.1f", f.ms, total.ms > 0 ? 100.0 * f.ms / total.ms : 0.0,
                   s > 0 ? f.flops / s / 1e12 : 0.0, s > 0 ? gb / s : 0.0);
        }
        out += "\n";
    };
    for (int i = 0; i < kFamilies; ++i) row(family_name(Family(i)), r.families[size_t(i)]);
    row("total", total);
    append(out, "device calls outside ops (inputs, outputs): %lld\n", (long long)r.device_calls_outside);
    return out;
}

std::string format_prediction(const Report& r, double bytes_per_element, const std::string& device_name,
                              double peak_tflops, double peak_gbps) {
    // The fraction of peak a tuned implementation of each family reaches on large SDXL shapes (assumptions,
    // stated so a measured run can correct them): cuBLASLt GEMMs and cuDNN convs ~70% / ~60% of dense tensor
    // peak, FlashAttention-2-style kernels ~50% (FA2 reaches 50-73% on A100, less on H100 without FA3's
    // wgmma), memory-bound kernels ~80% of HBM bandwidth.
    static const double kComputeEff[kFamilies] = {0.50, 0.70, 0.60, 1.0, 1.0, 1.0};
    const double kMemEff = 0.80;
    const double kLaunchUs = 2.5;  // eager launch overhead per device call (~0 inside one CUDA graph)
    std::string out;
    append(out, "predicted on %s (%.0f TFLOP/s dense, %.0f GB/s):\n", device_name.c_str(), peak_tflops, peak_gbps);
    append(out, "%-12s %10s %10s %10s %9s\n", "family", "compute ms", "memory ms", "bound ms", "launch ms");
    double total = 0, launches = 0;
    for (int i = 0; i < kFamilies; ++i) {
        const FamilyTotals& f = r.families[size_t(i)];
        const double compute = f.flops / (peak_tflops * 1e12 * kComputeEff[i]) * 1e3;
        const double memory = family_bytes(f, bytes_per_element) / (peak_gbps * 1e9 * kMemEff) * 1e3;
        const double bound = compute > memory ? compute : memory;
        // A count-only run makes no device calls: its op calls are then the lower bound.
        const double launch = double(r.count_only ? f.calls : f.device_calls) * kLaunchUs / 1e3;
        total += bound;
        launches += launch;
        append(out, "%-12s %10.2f %10.2f %10.2f %9.2f\n", family_name(Family(i)), compute, memory, bound, launch);
    }
    append(out, "step: %.1f ms in one CUDA graph, up to %.1f ms eager when launch overhead (%.1f us per %s) does "
                "not overlap with work\n",
           total, total + launches, kLaunchUs, r.count_only ? "op call, a lower bound" : "device call");
    return out;
}

}  // namespace sdxl::profile
