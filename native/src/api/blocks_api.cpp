// Single diffusers blocks of sdxl.h (Transformer2DBlock, ResnetBlock): one block at any width, from weight
// files under a key prefix (strict: every tensor under the prefix must be used) or from random weights, so
// that Java can check a block at SDXL's real widths against another implementation and time it alone.
#include <memory>
#include <string>

#include "api/handles.h"
#include "core/error.h"
#include "nn/blocks.h"
#include "nn/weights.h"

namespace sdxl::api {

namespace {

// A weight source scoped at `prefix` ("" = the file's root), its tensors checked after the block is built.
struct Scoped {
    nn::WeightBuilder root;
    nn::WeightBuilder vb;
};

Scoped scoped(const std::vector<std::string>& weight_files, const std::string& prefix) {
    SDXL_CHECK(prefix.empty() || (prefix.front() != '.' && prefix.back() != '.'),
               "block prefix must not start or end with '.', got '", prefix, "'");
    nn::WeightBuilder root(nn::safetensors_source(weight_files));
    nn::WeightBuilder vb = prefix.empty() ? root : root.pp(prefix);
    return {root, vb};
}

// Tensors under "prefix." the block did not take (a file may hold a whole model; only this block's keys count).
void check_used(const Scoped& s, const std::string& prefix) {
    s.root.check_all_used(prefix.empty() ? std::string() : prefix + ".");
}

void check_transformer_args(int64_t channels, int64_t heads, int64_t head_dim, int64_t layers, int64_t context_dim,
                            int64_t groups) {
    SDXL_CHECK(channels >= 1 && heads >= 1 && head_dim >= 1 && layers >= 1 && context_dim >= 1,
               "Transformer2DBlock: channels, heads, head_dim, layers and context_dim must be >= 1, got ", channels,
               ", ", heads, ", ", head_dim, ", ", layers, ", ", context_dim);
    SDXL_CHECK(groups >= 1 && channels % groups == 0, "Transformer2DBlock: groups ", groups,
               " must be >= 1 and divide channels ", channels);
}

void check_resnet_args(int64_t in, int64_t out, int64_t temb_channels, int64_t groups, float eps) {
    SDXL_CHECK(in >= 1 && out >= 1 && temb_channels >= 0,
               "ResnetBlock: in and out must be >= 1 and temb_channels >= 0, got ", in, ", ", out, ", ",
               temb_channels);
    SDXL_CHECK(groups >= 1 && in % groups == 0 && out % groups == 0, "ResnetBlock: groups ", groups,
               " must be >= 1 and divide both in ", in, " and out ", out);
    SDXL_CHECK(eps > 0.0f, "ResnetBlock: eps must be > 0, got ", eps);
}

template <typename Block>
const Block& get(void* p, const char* name) {
    auto& ptr = *static_cast<std::shared_ptr<Block>*>(p);
    if (!ptr) fail(sdxl::ErrorCode::INVALID_ARGUMENT, name, " handle is empty");
    return *ptr;
}

template <typename Block>
void set(void* p, std::shared_ptr<Block> block) {
    *static_cast<std::shared_ptr<Block>*>(p) = std::move(block);
}

}  // namespace

// Copyable handles over a shared_ptr to the block (copies share weights), as the model handles.
#define SDXL_BLOCK_HANDLE(Handle, Block)                                                                \
    Handle::Handle() : impl_(new std::shared_ptr<Block>()) {}                                           \
    Handle::Handle(const Handle& other)                                                                 \
        : impl_(new std::shared_ptr<Block>(*static_cast<std::shared_ptr<Block>*>(other.impl_))) {}      \
    Handle::~Handle() { delete static_cast<std::shared_ptr<Block>*>(impl_); }                           \
    Handle& Handle::operator=(const Handle& other) {                                                    \
        *static_cast<std::shared_ptr<Block>*>(impl_) = *static_cast<std::shared_ptr<Block>*>(other.impl_); \
        return *this;                                                                                   \
    }

SDXL_BLOCK_HANDLE(Transformer2DBlock, nn::Transformer2DModel)
SDXL_BLOCK_HANDLE(ResnetBlock, nn::ResnetBlock2D)

// ---------------------------------------------------------------------------------------- Transformer2DBlock

Transformer2DBlock Transformer2DBlock::load(const std::vector<std::string>& weight_files, const std::string& prefix,
                                            int64_t channels, int64_t heads, int64_t head_dim, int64_t layers,
                                            int64_t context_dim, int64_t groups, bool use_linear_projection) {
    check_transformer_args(channels, heads, head_dim, layers, context_dim, groups);
    Scoped s = scoped(weight_files, prefix);
    auto block = std::make_shared<nn::Transformer2DModel>(s.vb, channels, heads, head_dim, layers, context_dim, groups,
                                                          use_linear_projection);
    check_used(s, prefix);
    Transformer2DBlock b;
    set(b.impl_, std::move(block));
    return b;
}

Transformer2DBlock Transformer2DBlock::random(int64_t channels, int64_t heads, int64_t head_dim, int64_t layers,
                                              int64_t context_dim, int64_t groups, bool use_linear_projection,
                                              int64_t seed) {
    check_transformer_args(channels, heads, head_dim, layers, context_dim, groups);
    nn::WeightBuilder vb(nn::random_source(uint64_t(seed), 1.0f));
    Transformer2DBlock b;
    set(b.impl_, std::make_shared<nn::Transformer2DModel>(vb, channels, heads, head_dim, layers, context_dim, groups,
                                                          use_linear_projection));
    return b;
}

Tensor Transformer2DBlock::forward(const Tensor& x, const Tensor& context) const {
    return wrap(get<nn::Transformer2DModel>(impl_, "Transformer2DBlock")(core(x), core(context)));
}

// ---------------------------------------------------------------------------------------- ResnetBlock

ResnetBlock ResnetBlock::load(const std::vector<std::string>& weight_files, const std::string& prefix, int64_t in,
                              int64_t out, int64_t temb_channels, int64_t groups, float eps) {
    check_resnet_args(in, out, temb_channels, groups, eps);
    Scoped s = scoped(weight_files, prefix);
    auto block = std::make_shared<nn::ResnetBlock2D>(s.vb, in, out, temb_channels, groups, eps);
    check_used(s, prefix);
    ResnetBlock b;
    set(b.impl_, std::move(block));
    return b;
}

ResnetBlock ResnetBlock::random(int64_t in, int64_t out, int64_t temb_channels, int64_t groups, float eps,
                                int64_t seed) {
    check_resnet_args(in, out, temb_channels, groups, eps);
    nn::WeightBuilder vb(nn::random_source(uint64_t(seed), 1.0f));
    ResnetBlock b;
    set(b.impl_, std::make_shared<nn::ResnetBlock2D>(vb, in, out, temb_channels, groups, eps));
    return b;
}

Tensor ResnetBlock::forward(const Tensor& x, const Tensor& temb) const {
    return wrap(get<nn::ResnetBlock2D>(impl_, "ResnetBlock")(core(x), core(temb)));
}

}  // namespace sdxl::api
