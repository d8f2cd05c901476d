// One CUDA graph per UNet step and input shape (issue 12): a denoising step launches hundreds of kernels and
// library calls whose launch overhead a graph replaces with one launch.
//
// Per input-shape key (shapes and dtypes of every input): the first call runs eagerly (warm-up: lazily created
// library handles, cuDNN's algorithm choice, cached weights); the second captures the forward pass on static
// device input buffers (device::cuda_graph_capture) and replays it; later calls copy the inputs into the static
// buffers on the backend stream, launch the graph and return a fresh copy of its output. A capture that fails
// (graph-unsafe work in the forward pass, refused by CUDA) prints one warning and that shape stays eager. The
// graphs, their static buffers and their private memory pools are released with the runner (the model).
// Thread-safe: a key's graph is launched by one thread at a time.
//
// Enabled for models on CUDA in F16/BF16 unless SDXL4J_CUDA_GRAPHS=0 (=1 also enables them for F32);
// set_enabled overrides the environment per model.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/tensor.h"

namespace sdxl::models {

class UNetGraphRunner {
public:
    // The model's plain forward pass: sample, timestep, encoder_hidden_states, text_embeds, time_ids.
    using Forward = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&)>;

    UNetGraphRunner(Device device, DType dtype);
    ~UNetGraphRunner();
    UNetGraphRunner(const UNetGraphRunner&) = delete;
    UNetGraphRunner& operator=(const UNetGraphRunner&) = delete;

    void set_enabled(bool enabled);
    bool enabled() const;

    Tensor run(const Forward& forward, const Tensor& sample, const Tensor& timestep,
               const Tensor& encoder_hidden_states, const Tensor& text_embeds, const Tensor& time_ids);

    struct Stats {
        int64_t graphs = 0;           // captured and live
        int64_t replays = 0;          // graph launches
        int64_t failed_captures = 0;  // shapes that stay eager
        int64_t eager_calls = 0;      // warm-ups, disabled and failed shapes
        size_t nodes = 0;             // nodes over all live graphs
    };
    Stats stats() const;
    void clear();  // destroys every graph (and its pool); the next call per shape warms up again

private:
    struct Entry;
    Device device_;
    DType dtype_;
    bool enabled_;
    mutable std::mutex mu_;  // guards entries_ and stats_ (a key's own work is under its Entry's lock)
    std::map<std::string, std::shared_ptr<Entry>> entries_;
    Stats stats_;
};

}  // namespace sdxl::models
