#include "models/unet_graph.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/device.h"
#include "core/op_profile.h"

namespace sdxl::models {

struct UNetGraphRunner::Entry {
    std::mutex mu;
    int64_t eager_runs = 0;
    bool failed = false;
    // Declared before the tensors, so destroyed after them: the output block returns to the pool first.
    std::shared_ptr<device::CudaGraph> graph;
    Tensor sample, timestep, context, text_embeds, time_ids;  // static inputs (device, contiguous)
    Tensor out;                                               // static output (a block of the graph's pool)
};

namespace {

bool env_default(DType dtype) {
    const char* v = std::getenv("SDXL4J_CUDA_GRAPHS");
    if (v && v[0] == '0') return false;
    if (v && v[0] == '1') return true;
    return dtype == DType::F16 || dtype == DType::BF16;
}

void describe(std::ostringstream& o, const Tensor& t) {
    if (!t.defined()) {
        o << "-;";
        return;
    }
    o << int(t.dtype()) << (t.device() == Device::CUDA ? 'c' : 'h') << '[';
    for (int64_t d : t.shape()) o << d << ',';
    o << "];";
}

// A device-resident contiguous copy target of t's shape and dtype.
Tensor static_like(const Tensor& t) { return t.defined() ? Tensor::empty(t.shape(), t.dtype(), Device::CUDA) : Tensor(); }

// dst (static, device, contiguous) <- src: host tensors are copied in (outside any capture), device ones on the
// backend stream.
void copy_into(const Tensor& dst, const Tensor& src) {
    if (!dst.defined()) return;
    const size_t n = size_t(dst.numel()) * dtype_size(dst.dtype());
    const Tensor s = src.contiguous();
    if (s.device() == Device::CPU) {
        device::copy_host_to_device(dst.raw_data(), s.raw_data(), n);
    } else {
        device::copy_device_to_device(dst.raw_data(), s.raw_data(), n);
    }
}

}  // namespace

UNetGraphRunner::UNetGraphRunner(Device device, DType dtype)
    : device_(device), dtype_(dtype), enabled_(device == Device::CUDA && env_default(dtype)) {}

UNetGraphRunner::~UNetGraphRunner() = default;

void UNetGraphRunner::set_enabled(bool enabled) {
    std::lock_guard<std::mutex> lock(mu_);
    enabled_ = enabled && device_ == Device::CUDA;
}

bool UNetGraphRunner::enabled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return enabled_;
}

UNetGraphRunner::Stats UNetGraphRunner::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    Stats s = stats_;
    s.graphs = 0;
    s.nodes = 0;
    for (const auto& kv : entries_) {
        if (kv.second->graph) {
            s.graphs += 1;
            s.nodes += device::cuda_graph_nodes(*kv.second->graph);
        }
    }
    return s;
}

void UNetGraphRunner::clear() {
    std::map<std::string, std::shared_ptr<Entry>> gone;
    {
        std::lock_guard<std::mutex> lock(mu_);
        gone.swap(entries_);
    }
    // Entries in use by another thread are destroyed by it, when it lets go.
}

Tensor UNetGraphRunner::run(const Forward& forward, const Tensor& sample, const Tensor& timestep,
                            const Tensor& encoder_hidden_states, const Tensor& text_embeds, const Tensor& time_ids) {
    auto eager = [&] {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stats_.eager_calls += 1;
        }
        return forward(sample, timestep, encoder_hidden_states, text_embeds, time_ids);
    };
    std::shared_ptr<Entry> entry;
    {
        std::lock_guard<std::mutex> lock(mu_);
        // An op profile times each op with events on the stream: those must not become graph nodes.
        if (!enabled_ || !sample.defined() || sample.device() != Device::CUDA || profile::active()) {
            stats_.eager_calls += 1;
            entry = nullptr;
        } else {
            std::ostringstream key;
            for (const Tensor* t : {&sample, &timestep, &encoder_hidden_states, &text_embeds, &time_ids}) describe(key, *t);
            auto& slot = entries_[key.str()];
            if (!slot) slot = std::make_shared<Entry>();
            entry = slot;
        }
    }
    if (!entry) return forward(sample, timestep, encoder_hidden_states, text_embeds, time_ids);

    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->failed || (!entry->graph && entry->eager_runs == 0)) {
        Tensor y = eager();  // warm-up (or a shape that stays eager); counts only when it succeeded
        entry->eager_runs += 1;
        return y;
    }
    if (!entry->graph) {
        // The timestep becomes a device input ([B] or 0-d as given): the forward pass then never reads it on the
        // host, which would synchronise (refused during a capture).
        entry->sample = static_like(sample);
        entry->timestep = static_like(timestep);
        entry->context = static_like(encoder_hidden_states);
        entry->text_embeds = static_like(text_embeds);
        entry->time_ids = static_like(time_ids);
        std::string why;
        entry->graph = device::cuda_graph_capture(
            [&] { entry->out = forward(entry->sample, entry->timestep, entry->context, entry->text_embeds, entry->time_ids); },
            &why);
        if (!entry->graph) {
            entry->failed = true;
            entry->out = Tensor();
            entry->sample = entry->timestep = entry->context = entry->text_embeds = entry->time_ids = Tensor();
            std::fprintf(stderr, "sdxl4j: CUDA graph capture of the UNet step failed, this shape stays eager: %s\n",
                         why.c_str());
            {
                std::lock_guard<std::mutex> l(mu_);
                stats_.failed_captures += 1;
            }
            return eager();
        }
    }
    copy_into(entry->sample, sample);
    copy_into(entry->timestep, timestep);
    copy_into(entry->context, encoder_hidden_states);
    copy_into(entry->text_embeds, text_embeds);
    copy_into(entry->time_ids, time_ids);
    device::cuda_graph_launch(*entry->graph);
    {
        std::lock_guard<std::mutex> l(mu_);
        stats_.replays += 1;
    }
    return entry->out.clone();  // the next replay overwrites the static output
}

}  // namespace sdxl::models
