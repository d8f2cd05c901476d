// The Generator handle of sdxl.h: a shared, lock-protected sdxl::Generator.
#include <memory>
#include <mutex>

#include "api/handles.h"
#include "core/error.h"
#include "core/random.h"

namespace sdxl::api {

// One stream shared by every copy of a handle. Java may call from several threads (torch also locks its
// generator per draw), so each call holds the mutex.
struct GeneratorState {
    std::mutex mutex;
    sdxl::Generator gen;
    explicit GeneratorState(const sdxl::Generator& g) : gen(g) {}
};

namespace {

using StatePtr = std::shared_ptr<GeneratorState>;

GeneratorState& state(void* p) {
    StatePtr& s = *static_cast<StatePtr*>(p);
    if (!s) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "generator handle is empty");
    return *s;
}

}  // namespace

Generator::Generator(uint64_t seed) : impl_(new StatePtr(std::make_shared<GeneratorState>(sdxl::Generator(seed)))) {}
Generator::Generator(const Generator& other) : impl_(new StatePtr(*static_cast<StatePtr*>(other.impl_))) {}
Generator::~Generator() { delete static_cast<StatePtr*>(impl_); }
Generator& Generator::operator=(const Generator& other) {
    *static_cast<StatePtr*>(impl_) = *static_cast<StatePtr*>(other.impl_);
    return *this;
}

Generator Generator::clone() const {
    GeneratorState& s = state(impl_);
    std::lock_guard<std::mutex> lock(s.mutex);
    Generator out(0);
    *static_cast<StatePtr*>(out.impl_) = std::make_shared<GeneratorState>(s.gen);
    return out;
}

void Generator::manual_seed(uint64_t seed) {
    GeneratorState& s = state(impl_);
    std::lock_guard<std::mutex> lock(s.mutex);
    s.gen.manual_seed(seed);
}

uint64_t Generator::initial_seed() const {
    GeneratorState& s = state(impl_);
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.gen.initial_seed();
}

Tensor Generator::randn(const std::vector<int64_t>& shape) {
    GeneratorState& s = state(impl_);
    std::lock_guard<std::mutex> lock(s.mutex);
    return wrap(s.gen.randn(shape));
}

}  // namespace sdxl::api
