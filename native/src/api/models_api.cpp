// The model handles of sdxl.h: build from weight files (strict) or random weights, run forward.
#include <memory>

#include "api/handles.h"
#include "core/error.h"
#include "models/autoencoder_kl.h"
#include "models/clip_text.h"
#include "models/unet2d_condition.h"
#include "nn/weights.h"

namespace sdxl::api {

namespace {

// Builds a model over weight files and checks that every tensor in them was used.
template <typename Model, typename Config>
std::shared_ptr<Model> build_from_files(const Config& config, const std::vector<std::string>& files,
                                        const std::vector<std::string>& buffers) {
    nn::WeightBuilder vb(nn::safetensors_source(files));
    auto model = std::make_shared<Model>(config, vb);
    for (const auto& b : buffers) vb.skip(b);
    vb.check_all_used();
    return model;
}

template <typename Model, typename Config>
std::shared_ptr<Model> build_random(const Config& config, int64_t seed) {
    return std::make_shared<Model>(config, nn::WeightBuilder(nn::random_source(uint64_t(seed), 1.0f)));
}

template <typename Model>
const Model& get(void* p) {
    auto& ptr = *static_cast<std::shared_ptr<Model>*>(p);
    if (!ptr) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "model handle is empty");
    return *ptr;
}

}  // namespace

// Copyable handles over a shared_ptr to the model (copies share weights).
#define SDXL_MODEL_HANDLE(Handle, Model)                                                               \
    Handle::Handle() : impl_(new std::shared_ptr<Model>()) {}                                          \
    Handle::Handle(const Handle& other)                                                                \
        : impl_(new std::shared_ptr<Model>(*static_cast<std::shared_ptr<Model>*>(other.impl_))) {}     \
    Handle::~Handle() { delete static_cast<std::shared_ptr<Model>*>(impl_); }                          \
    Handle& Handle::operator=(const Handle& other) {                                                   \
        *static_cast<std::shared_ptr<Model>*>(impl_) = *static_cast<std::shared_ptr<Model>*>(other.impl_); \
        return *this;                                                                                  \
    }

SDXL_MODEL_HANDLE(ClipTextModel, models::ClipTextModel)
SDXL_MODEL_HANDLE(UNetModel, models::UNet2DConditionModel)
SDXL_MODEL_HANDLE(VaeModel, models::AutoencoderKL)

ClipTextModel ClipTextModel::load(const ClipTextConfig& config, const std::vector<std::string>& weight_files) {
    ClipTextModel m;
    // position_ids is a registered buffer some exports save with the weights.
    *static_cast<std::shared_ptr<models::ClipTextModel>*>(m.impl_) =
        build_from_files<models::ClipTextModel>(config, weight_files, {"text_model.embeddings.position_ids"});
    return m;
}

ClipTextModel ClipTextModel::random(const ClipTextConfig& config, int64_t seed) {
    ClipTextModel m;
    *static_cast<std::shared_ptr<models::ClipTextModel>*>(m.impl_) = build_random<models::ClipTextModel>(config, seed);
    return m;
}

TensorList ClipTextModel::forward(const Tensor& input_ids) const { return forward_masked(input_ids, Tensor()); }

TensorList ClipTextModel::forward_masked(const Tensor& input_ids, const Tensor& attention_mask) const {
    models::ClipTextOutput out = get<models::ClipTextModel>(impl_).forward(core(input_ids), core(attention_mask));
    TensorList list;
    list.add(wrap(out.last_hidden_state));
    list.add(wrap(out.pooled));
    for (const auto& h : out.hidden_states) list.add(wrap(h));
    return list;
}

UNetModel UNetModel::load(const UNetConfig& config, const std::vector<std::string>& weight_files) {
    UNetModel m;
    *static_cast<std::shared_ptr<models::UNet2DConditionModel>*>(m.impl_) =
        build_from_files<models::UNet2DConditionModel>(config, weight_files, {});
    return m;
}

UNetModel UNetModel::random(const UNetConfig& config, int64_t seed) {
    UNetModel m;
    *static_cast<std::shared_ptr<models::UNet2DConditionModel>*>(m.impl_) =
        build_random<models::UNet2DConditionModel>(config, seed);
    return m;
}

Tensor UNetModel::forward(const Tensor& sample, const Tensor& timestep, const Tensor& encoder_hidden_states,
                          const Tensor& text_embeds, const Tensor& time_ids) const {
    return wrap(get<models::UNet2DConditionModel>(impl_).forward(core(sample), core(timestep),
                                                                 core(encoder_hidden_states), core(text_embeds),
                                                                 core(time_ids)));
}

VaeModel VaeModel::load(const VaeConfig& config, const std::vector<std::string>& weight_files) {
    VaeModel m;
    *static_cast<std::shared_ptr<models::AutoencoderKL>*>(m.impl_) =
        build_from_files<models::AutoencoderKL>(config, weight_files, {});
    return m;
}

VaeModel VaeModel::random(const VaeConfig& config, int64_t seed) {
    VaeModel m;
    *static_cast<std::shared_ptr<models::AutoencoderKL>*>(m.impl_) = build_random<models::AutoencoderKL>(config, seed);
    return m;
}

Tensor VaeModel::decode(const Tensor& z) const { return wrap(get<models::AutoencoderKL>(impl_).decode(core(z))); }

TensorList VaeModel::encode(const Tensor& image) const {
    models::LatentDistribution d = get<models::AutoencoderKL>(impl_).encode(core(image));
    TensorList list;
    list.add(wrap(d.mean));
    list.add(wrap(d.logvar));
    list.add(wrap(d.std));
    return list;
}

}  // namespace sdxl::api

namespace sdxl::api {

std::shared_ptr<const models::UNet2DConditionModel> HandleAccess::unet(const UNetModel& handle) {
    auto& ptr = *static_cast<std::shared_ptr<models::UNet2DConditionModel>*>(handle.impl_);
    if (!ptr) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "UNet handle is empty");
    return ptr;
}

}  // namespace sdxl::api
