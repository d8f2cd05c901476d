// Weights by diffusers key, bound strictly (candle's VarBuilder, ggml's name maps):
//   WeightBuilder vb(source);  Linear proj(vb.pp("down_blocks").pp(1).pp("attentions").pp(0).pp("proj_in"), 640, 640);
// get() checks the key exists and has the expected shape, and marks it used; after a model is built,
// check_all_used() reports tensors the model did not take. Every error names the full key.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sdxl::io {
class SafetensorsFile;
}

namespace sdxl::nn {

// Where weights come from. Tensors are returned as F32 on the CPU (fp16/bf16 files are widened).
class WeightSource {
public:
    virtual ~WeightSource() = default;
    virtual bool contains(const std::string& key) const = 0;
    virtual Shape shape(const std::string& key) const = 0;  // NOT_FOUND if absent
    virtual Tensor load(const std::string& key) const = 0;   // F32, CPU
    virtual std::vector<std::string> keys() const = 0;
    virtual std::string describe() const = 0;                // for messages: the file names
    // For messages: where a key's tensor is stored when the file names it otherwise (a single-file checkpoint's
    // key), else "".
    virtual std::string origin(const std::string& /*key*/) const { return {}; }
};

// One or more .safetensors files (a sharded checkpoint); a key must be in exactly one of them.
std::shared_ptr<WeightSource> safetensors_source(const std::vector<std::string>& paths);

// Deterministic pseudo-random weights for any requested key and shape (N(0, 1) * scale for weights, zeros
// for biases, ones for norm scales), for building real-size configs without weight files. Every key
// requested exists, so check_all_used() never fails for it.
std::shared_ptr<WeightSource> random_source(uint64_t seed, float scale);

// Where a model's weights live and the type it computes in: F32 on the CPU (the reference), or F16/BF16 (or
// F32) on CUDA. get() converts each weight on load: to the dtype on the host, then one copy to the device.
struct Placement {
    Device device = Device::CPU;
    DType dtype = DType::F32;
};

// Run-time (unfused) adapters of one Linear or Conv2d (models/lora.h): the layer computes
//   y = W x + b + up(down(x)) + dense(x)
// with the low-rank adapters stacked into one pair (down [R, in(, kh, kw)] with the layer's stride and padding,
// up [out, R(, 1, 1)], each adapter's scale folded into its columns of up) and the full-rank ones (LoHa, LoKr: their
// scaled deltas summed) in dense [out, in(, kh, kw)]. Either part may be undefined. The layer's device and dtype.
struct Adapter {
    Tensor down, up, dense;
};

// Where a layer finds its adapters. Every Linear and Conv2d registers one in its model's WeightTable under its module
// key; overlays set it; the layer's forward checks get() for null, its only cost when nothing is attached. Set only
// while the model does not run (WeightTable::run_mutex).
class AdapterSlot {
public:
    const Adapter* get() const { return adapter_.get(); }
    void set(std::shared_ptr<const Adapter> adapter) { adapter_ = std::move(adapter); }

private:
    std::shared_ptr<const Adapter> adapter_;
};

// The tensors a model computes with, by diffusers key (every get() is recorded here), so that overlays (LoRA
// fusing) can find and update a weight in place after the model is built. Entries hold the storage weakly: a
// tensor the model dropped (e.g. CUDA's separate to_q/to_k/to_v once fused into one q/k/v weight) disappears,
// and the model publishes the view it computes with instead.
class WeightTable {
public:
    void put(const std::string& key, const Tensor& t);
    // The tensor under `key`, or an undefined tensor when absent or released.
    Tensor find(const std::string& key) const;
    std::vector<std::string> keys() const;

    // The adapter slot of the layer under `module` ("down_blocks.0.resnets.0.conv1"), made on first use (by the
    // layer's constructor); find_slot: null when the module has no layer.
    std::shared_ptr<AdapterSlot> slot(const std::string& module);
    std::shared_ptr<AdapterSlot> find_slot(const std::string& module) const;
    std::vector<std::pair<std::string, std::shared_ptr<AdapterSlot>>> slots() const;

    // Overlay state kept with the weights it changes (see models/lora.h); guarded by overlay_mutex.
    std::mutex overlay_mutex;
    // key -> exact copy (host, the weight's dtype) of a touched weight; an undefined tensor when the weight's storage
    // can give its original bytes back itself (Storage::has_original: a view into a weight file's mapping).
    std::map<std::string, Tensor> originals;
    // Forward passes hold it shared, overlay changes exclusively: a change waits for a running step to finish.
    mutable std::shared_mutex run_mutex;
    // Counts overlay changes, so that what was computed from the weights (cross-attention keys/values kept across
    // steps) can tell it is stale.
    std::atomic<uint64_t> version{0};

private:
    struct Entry {
        std::weak_ptr<Storage> storage;
        int64_t offset = 0;
        Shape shape, strides;
        DType dtype = DType::F32;
    };
    mutable std::mutex mutex_;
    std::map<std::string, Entry> entries_;
    std::map<std::string, std::shared_ptr<AdapterSlot>> slots_;
};

class WeightBuilder {
public:
    explicit WeightBuilder(std::shared_ptr<WeightSource> source, Placement placement = {});
    const Placement& placement() const { return shared_->placement; }

    WeightBuilder pp(const std::string& name) const;  // push a prefix component: "a" -> "a.name"
    WeightBuilder pp(int64_t index) const;
    const std::string& prefix() const { return prefix_; }
    std::string key(const std::string& name) const;  // the full key of a tensor under this prefix

    bool contains(const std::string& name) const;
    // The tensor `name` under this prefix; BAD_MODEL_FILE naming the full key if it is missing or its
    // shape is not `shape`.
    Tensor get(const std::string& name, const Shape& shape) const;
    // The same tensor as F32 on the CPU whatever the placement (for host-side lookups such as embedding rows).
    Tensor get_host(const std::string& name, const Shape& shape) const;

    // Marks `name` (under this prefix) as accounted for without loading it: buffers some files carry that
    // are not weights (e.g. CLIP's text_model.embeddings.position_ids). No error if it is absent.
    void skip(const std::string& name) const;

    // Records `t` as the tensor the model computes with for `name` (under this prefix) in table().
    void publish(const std::string& name, const Tensor& t) const;
    // The adapter slot of the layer at this prefix (WeightTable::slot).
    std::shared_ptr<AdapterSlot> adapter_slot() const { return shared_->table->slot(prefix_); }
    const std::shared_ptr<WeightTable>& table() const { return shared_->table; }

    // BAD_MODEL_FILE listing (some of) the source's keys under `prefix` that no get() took.
    void check_all_used(const std::string& prefix = "") const;

private:
    struct Shared {
        std::shared_ptr<WeightSource> source;
        Placement placement;
        std::mutex mutex;
        std::set<std::string> used;
        std::shared_ptr<WeightTable> table = std::make_shared<WeightTable>();
    };
    WeightBuilder(std::shared_ptr<Shared> shared, std::string prefix);

    std::shared_ptr<Shared> shared_;
    std::string prefix_;
};

}  // namespace sdxl::nn
