#include "nn/weights.h"

#include <cmath>
#include <map>
#include <random>

#include "core/counter_random.h"
#include "core/op_profile.h"
#include "core/device.h"
#include "core/parallel.h"

#include "io/safetensors.h"

namespace sdxl::nn {

namespace {

class SafetensorsSource : public WeightSource {
public:
    explicit SafetensorsSource(const std::vector<std::string>& paths) {
        if (paths.empty()) fail(ErrorCode::INVALID_ARGUMENT, "no weight files given");
        for (const auto& p : paths) files_.push_back(io::SafetensorsFile::open(p));
        for (const auto& f : files_) {
            for (const auto& t : f->header().tensors) {
                auto [it, inserted] = owner_.emplace(t.name, f.get());
                if (!inserted)
                    fail(ErrorCode::BAD_MODEL_FILE, "tensor '", t.name, "' is in both ", it->second->path(), " and ",
                         f->path());
            }
        }
    }

    bool contains(const std::string& key) const override { return owner_.count(key) != 0; }

    Shape shape(const std::string& key) const override { return file_of(key).find(key)->shape; }

    Tensor load(const std::string& key) const override {
        const io::SafetensorsFile& f = file_of(key);
        const io::TensorInfo* info = f.find(key);
        if (!info->loads_as_f32())
            fail(ErrorCode::BAD_MODEL_FILE, f.path(), ": tensor '", key, "' is ", info->dtype_name,
                 ", weights must be F32, F16, BF16 or F8_E4M3 / F8_E5M2");
        return f.get_f32(key);
    }

    std::vector<std::string> keys() const override {
        std::vector<std::string> out;
        for (const auto& kv : owner_) out.push_back(kv.first);
        return out;
    }

    std::string describe() const override {
        std::string s;
        for (const auto& f : files_) s += (s.empty() ? "" : ", ") + f->path();
        return s;
    }

private:
    const io::SafetensorsFile& file_of(const std::string& key) const {
        auto it = owner_.find(key);
        if (it == owner_.end()) fail(ErrorCode::NOT_FOUND, describe(), ": no tensor '", key, "'");
        return *it->second;
    }

    std::vector<std::shared_ptr<io::SafetensorsFile>> files_;
    std::map<std::string, const io::SafetensorsFile*> owner_;
};

class RandomSource : public WeightSource {
public:
    RandomSource(uint64_t seed, float scale) : seed_(seed), scale_(scale) {}

    bool contains(const std::string&) const override { return true; }
    Shape shape(const std::string& key) const override {
        fail(ErrorCode::UNSUPPORTED, "random weights have no stored shape for '", key, "'");
    }
    Tensor load(const std::string& key) const override {
        fail(ErrorCode::UNSUPPORTED, "random weights need a shape for '", key, "'");
    }
    // What a key's values are: zeros (biases), ones (norm scales) or scaled normals.
    enum class Kind { ZEROS, ONES, NORMAL };
    struct Plan {
        Kind kind;
        uint64_t base;  // counter_random stream of this key
        float scale;    // fan-in scaled, keeps activations O(1)
    };
    Plan plan(const std::string& key, const Shape& shape) const {
        auto ends_with = [&](const char* s) {
            std::string suf(s);
            return key.size() >= suf.size() && key.compare(key.size() - suf.size(), suf.size(), suf) == 0;
        };
        if (ends_with(".bias") || ends_with("beta")) return {Kind::ZEROS, 0, 0.0f};
        if (shape.size() == 1) return {Kind::ONES, 0, 0.0f};
        const int64_t n = shape_numel(shape);
        const float fan_in = float(shape[0] > 0 ? n / shape[0] : 0);
        return {Kind::NORMAL, seed_ ^ (std::hash<std::string>{}(key) * counter_random::kPhi),
                scale_ / std::sqrt(fan_in > 0 ? fan_in : 1.0f)};
    }
    Tensor make(const std::string& key, const Shape& shape) const {
        Tensor t = Tensor::empty(shape, DType::F32);
        if (profile::dry_run()) return t;  // a count-only profile: shapes without values (core/op_profile.h)
        float* p = t.data<float>();
        const int64_t n = t.numel();
        const Plan pl = plan(key, shape);
        if (pl.kind != Kind::NORMAL) {
            const float v = pl.kind == Kind::ONES ? 1.0f : 0.0f;
            for (int64_t i = 0; i < n; ++i) p[i] = v;
        } else {
            // Counter-based, so it parallelises and any subset of a model is reproducible.
            parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) p[i] = float(counter_random::normal(pl.base, uint64_t(i))) * pl.scale;
            });
        }
        return t;
    }
    // The same values made in place on the device (seconds for a 2.6 G-parameter UNet instead of minutes of host
    // generation and copies); equal to make() up to the device's log/cos ulps, rounded once to `dtype`.
    Tensor make_on_device(const std::string& key, const Shape& shape, DType dtype) const {
        Tensor t = Tensor::empty(shape, dtype, Device::CUDA);
        if (profile::dry_run()) return t;
        const Plan pl = plan(key, shape);
        device::cuda_fill_counter_normal(t.raw_data(), dtype, t.numel(), pl.base,
                                         pl.kind == Kind::NORMAL ? pl.scale : 0.0f,
                                         pl.kind == Kind::ONES ? 1.0f : 0.0f);
        return t;
    }
    std::vector<std::string> keys() const override { return {}; }
    std::string describe() const override { return "random weights (seed " + std::to_string(seed_) + ")"; }

private:
    uint64_t seed_;
    float scale_;
};

}  // namespace

std::shared_ptr<WeightSource> safetensors_source(const std::vector<std::string>& paths) {
    return std::make_shared<SafetensorsSource>(paths);
}

std::shared_ptr<WeightSource> random_source(uint64_t seed, float scale) {
    return std::make_shared<RandomSource>(seed, scale);
}

WeightBuilder::WeightBuilder(std::shared_ptr<WeightSource> source, Placement placement)
    : shared_(std::make_shared<Shared>()) {
    if (!source) fail(ErrorCode::INVALID_ARGUMENT, "WeightBuilder: null source");
    SDXL_CHECK(placement.dtype != DType::I64, "WeightBuilder: weights cannot be I64");
    SDXL_CHECK(placement.device == Device::CUDA || placement.dtype == DType::F32,
               "WeightBuilder: the CPU backend computes in F32; F16/BF16 weights need the CUDA device");
    shared_->source = std::move(source);
    shared_->placement = placement;
}

WeightBuilder::WeightBuilder(std::shared_ptr<Shared> shared, std::string prefix)
    : shared_(std::move(shared)), prefix_(std::move(prefix)) {}

WeightBuilder WeightBuilder::pp(const std::string& name) const { return WeightBuilder(shared_, key(name)); }

WeightBuilder WeightBuilder::pp(int64_t index) const { return pp(std::to_string(index)); }

std::string WeightBuilder::key(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "." + name; }

bool WeightBuilder::contains(const std::string& name) const { return shared_->source->contains(key(name)); }

Tensor WeightBuilder::get(const std::string& name, const Shape& shape) const {
    const Placement& p = shared_->placement;
    if (p.device == Device::CUDA) {
        if (auto* random = dynamic_cast<const RandomSource*>(shared_->source.get())) {
            const std::string k = key(name);
            Tensor t = random->make_on_device(k, shape, p.dtype);
            shared_->table->put(k, t);
            std::lock_guard<std::mutex> g(shared_->mutex);
            shared_->used.insert(k);
            return t;
        }
    }
    Tensor t = get_host(name, shape);  // F32, CPU
    if (p.dtype != DType::F32) t = t.to(p.dtype);
    if (p.device != Device::CPU) t = t.to(p.device);
    shared_->table->put(key(name), t);
    return t;
}

void WeightBuilder::publish(const std::string& name, const Tensor& t) const { shared_->table->put(key(name), t); }

void WeightTable::put(const std::string& key, const Tensor& t) {
    std::lock_guard<std::mutex> g(mutex_);
    entries_[key] = Entry{t.storage(), t.offset(), t.shape(), t.strides(), t.dtype()};
}

Tensor WeightTable::find(const std::string& key) const {
    std::lock_guard<std::mutex> g(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return Tensor();
    std::shared_ptr<Storage> s = it->second.storage.lock();
    if (!s) return Tensor();
    return Tensor::from_storage(std::move(s), it->second.offset, it->second.shape, it->second.strides, it->second.dtype);
}

std::shared_ptr<AdapterSlot> WeightTable::slot(const std::string& module) {
    std::lock_guard<std::mutex> g(mutex_);
    auto& s = slots_[module];
    if (!s) s = std::make_shared<AdapterSlot>();
    return s;
}

std::shared_ptr<AdapterSlot> WeightTable::find_slot(const std::string& module) const {
    std::lock_guard<std::mutex> g(mutex_);
    auto it = slots_.find(module);
    return it == slots_.end() ? nullptr : it->second;
}

std::vector<std::pair<std::string, std::shared_ptr<AdapterSlot>>> WeightTable::slots() const {
    std::lock_guard<std::mutex> g(mutex_);
    return {slots_.begin(), slots_.end()};
}

std::vector<std::string> WeightTable::keys() const {
    std::lock_guard<std::mutex> g(mutex_);
    std::vector<std::string> out;
    for (const auto& kv : entries_)
        if (!kv.second.storage.expired()) out.push_back(kv.first);
    return out;
}

Tensor WeightBuilder::get_host(const std::string& name, const Shape& shape) const {
    const std::string k = key(name);
    const WeightSource& src = *shared_->source;
    Tensor t;
    if (auto* random = dynamic_cast<const RandomSource*>(&src)) {
        t = random->make(k, shape);
    } else {
        auto stored = [&] {  // for messages: the file's own key where it names the tensor otherwise
            const std::string origin = src.origin(k);
            return origin.empty() ? origin : " (file key '" + origin + "')";
        };
        if (!src.contains(k))
            fail(ErrorCode::BAD_MODEL_FILE, src.describe(), ": missing tensor '", k, "' ", shape_str(shape), stored());
        Shape actual = src.shape(k);
        if (actual != shape)
            fail(ErrorCode::BAD_MODEL_FILE, src.describe(), ": tensor '", k, "'", stored(), " has shape ",
                 shape_str(actual), ", the model config needs ", shape_str(shape));
        t = src.load(k);
    }
    std::lock_guard<std::mutex> g(shared_->mutex);
    shared_->used.insert(k);
    return t;
}

void WeightBuilder::skip(const std::string& name) const {
    std::lock_guard<std::mutex> g(shared_->mutex);
    shared_->used.insert(key(name));
}

void WeightBuilder::check_all_used(const std::string& prefix) const {
    std::vector<std::string> extra;
    std::lock_guard<std::mutex> g(shared_->mutex);
    for (const auto& k : shared_->source->keys()) {
        if (k.compare(0, prefix.size(), prefix) != 0) continue;
        if (!shared_->used.count(k)) extra.push_back(k);
    }
    if (extra.empty()) return;
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 5; ++i) list += (i ? ", '" : "'") + extra[i] + "'";
    if (extra.size() > 5) list += " and " + std::to_string(extra.size() - 5) + " more";
    fail(ErrorCode::BAD_MODEL_FILE, shared_->source->describe(), ": ", extra.size(),
         " tensor(s) the model config does not use: ", list, " (does the config match the weights?)");
}

}  // namespace sdxl::nn
