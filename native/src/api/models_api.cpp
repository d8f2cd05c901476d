// The model handles of sdxl.h: build from weight files (strict) or random weights, on a device and in a
// compute dtype; run forward. Inputs are moved to the model's placement here and outputs come back as F32 on
// the CPU, so callers (Java, the native runners) never handle device tensors.
#include <memory>

#include "api/handles.h"
#include "core/error.h"
#include "models/autoencoder_kl.h"
#include "models/clip_text.h"
#include "models/lora.h"
#include "models/single_file.h"
#include "models/unet2d_condition.h"
#include "nn/weights.h"

namespace sdxl::api {

namespace {

nn::Placement placement_of(int device, int dtype) {
    if (device != DEVICE_CPU && device != DEVICE_CUDA)
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, "unknown device code ", device);
    if (dtype != DTYPE_F32 && dtype != DTYPE_F16 && dtype != DTYPE_BF16)
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, "model dtype must be F32, F16 or BF16, got code ", dtype);
    nn::Placement p;
    p.device = device == DEVICE_CUDA ? sdxl::Device::CUDA : sdxl::Device::CPU;
    p.dtype = dtype == DTYPE_F16 ? sdxl::DType::F16 : dtype == DTYPE_BF16 ? sdxl::DType::BF16 : sdxl::DType::F32;
    return p;
}

// A floating input converted to the model's dtype (on the host while it is there) and moved to its device.
sdxl::Tensor placed(const sdxl::Tensor& t, const nn::Placement& p) {
    if (!t.defined()) return t;
    sdxl::Tensor out = t;
    if (out.dtype() != sdxl::DType::I64 && out.dtype() != p.dtype) out = out.to(p.dtype);
    return out.to(p.device);
}

// Only moved (keeps its dtype): ids, timesteps, time ids, masks.
sdxl::Tensor moved(const sdxl::Tensor& t, const nn::Placement& p) { return t.defined() ? t.to(p.device) : t; }

// An output as F32 on the CPU.
Tensor out_f32(const sdxl::Tensor& t) {
    if (!t.defined()) return wrap(t);
    return wrap(t.to(sdxl::Device::CPU).to(sdxl::DType::F32));
}

// Builds a model over a weight source and checks that every tensor in it was used.
template <typename Model, typename Config>
std::shared_ptr<Model> build_from_source(const Config& config, std::shared_ptr<nn::WeightSource> source,
                                         const std::vector<std::string>& buffers, const nn::Placement& placement) {
    nn::WeightBuilder vb(std::move(source), placement);
    auto model = std::make_shared<Model>(config, vb);
    for (const auto& b : buffers) vb.skip(b);
    vb.check_all_used();
    return model;
}

// The same over weight files (diffusers names).
template <typename Model, typename Config>
std::shared_ptr<Model> build_from_files(const Config& config, const std::vector<std::string>& files,
                                        const std::vector<std::string>& buffers, const nn::Placement& placement) {
    return build_from_source<Model>(config, nn::safetensors_source(files), buffers, placement);
}

// The same over one component of a single-file checkpoint, through its key map.
template <typename Model, typename Config>
std::shared_ptr<Model> build_from_checkpoint(const Config& config, const models::SgmCheckpoint& checkpoint,
                                             const models::SgmKeyMap& map, const std::vector<std::string>& buffers,
                                             const nn::Placement& placement) {
    return build_from_source<Model>(config, checkpoint.source(map), buffers, placement);
}

template <typename Model, typename Config>
std::shared_ptr<Model> build_random(const Config& config, int64_t seed, const nn::Placement& placement) {
    return std::make_shared<Model>(config, nn::WeightBuilder(nn::random_source(uint64_t(seed), 1.0f), placement));
}

template <typename Model>
const Model& get(void* p) {
    auto& ptr = *static_cast<std::shared_ptr<Model>*>(p);
    if (!ptr) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "model handle is empty");
    return *ptr;
}

int device_code(const nn::Placement& p) { return p.device == sdxl::Device::CUDA ? DEVICE_CUDA : DEVICE_CPU; }
int dtype_code(const nn::Placement& p) {
    return p.dtype == sdxl::DType::F16 ? DTYPE_F16 : p.dtype == sdxl::DType::BF16 ? DTYPE_BF16 : DTYPE_F32;
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

ClipTextModel ClipTextModel::load(const ClipTextConfig& config, const std::vector<std::string>& weight_files,
                                  int device, int dtype) {
    ClipTextModel m;
    // position_ids is a registered buffer some exports save with the weights.
    *static_cast<std::shared_ptr<models::ClipTextModel>*>(m.impl_) = build_from_files<models::ClipTextModel>(
        config, weight_files, {"text_model.embeddings.position_ids"}, placement_of(device, dtype));
    return m;
}

ClipTextModel ClipTextModel::random(const ClipTextConfig& config, int64_t seed, int device, int dtype) {
    ClipTextModel m;
    *static_cast<std::shared_ptr<models::ClipTextModel>*>(m.impl_) =
        build_random<models::ClipTextModel>(config, seed, placement_of(device, dtype));
    return m;
}

ClipTextModel ClipTextModel::load_single_file(const ClipTextConfig& config, const SingleFileCheckpoint& checkpoint,
                                              const std::string& component, int device, int dtype) {
    auto ck = HandleAccess::checkpoint(checkpoint);
    if (component != "text_encoder" && component != "text_encoder_2")
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, "component must be text_encoder or text_encoder_2, got '", component, "'");
    if (!ck->has(component))
        fail(sdxl::ErrorCode::NOT_FOUND, ck->path(), ": this checkpoint has no ", component,
             component == "text_encoder" ? " (an SDXL refiner checkpoint holds only OpenCLIP-G, text_encoder_2)" : "");
    const models::SgmKeyMap map = component == "text_encoder"
                                      ? models::SgmKeyMap::clip_l()
                                      : models::SgmKeyMap::open_clip(config, ck->open_clip_prefix());
    ClipTextModel m;
    *static_cast<std::shared_ptr<models::ClipTextModel>*>(m.impl_) = build_from_checkpoint<models::ClipTextModel>(
        config, *ck, map, {"text_model.embeddings.position_ids"}, placement_of(device, dtype));
    return m;
}

int ClipTextModel::device() const { return device_code(get<models::ClipTextModel>(impl_).placement()); }
int ClipTextModel::dtype() const { return dtype_code(get<models::ClipTextModel>(impl_).placement()); }

TensorList ClipTextModel::forward(const Tensor& input_ids) const { return forward_masked(input_ids, Tensor()); }

TensorList ClipTextModel::forward_masked(const Tensor& input_ids, const Tensor& attention_mask) const {
    return forward_added(input_ids, attention_mask, Tensor());
}

TensorList ClipTextModel::forward_added(const Tensor& input_ids, const Tensor& attention_mask,
                                        const Tensor& added_token_embeddings) const {
    const models::ClipTextModel& model = get<models::ClipTextModel>(impl_);
    models::ClipTextOutput out = model.forward(core(input_ids), moved(core(attention_mask), model.placement()),
                                               core(added_token_embeddings));
    TensorList list;
    list.add(out_f32(out.last_hidden_state));
    list.add(out_f32(out.pooled));
    for (const auto& h : out.hidden_states) list.add(out_f32(h));
    return list;
}

UNetModel UNetModel::load(const UNetConfig& config, const std::vector<std::string>& weight_files, int device,
                          int dtype) {
    UNetModel m;
    *static_cast<std::shared_ptr<models::UNet2DConditionModel>*>(m.impl_) =
        build_from_files<models::UNet2DConditionModel>(config, weight_files, {}, placement_of(device, dtype));
    return m;
}

UNetModel UNetModel::random(const UNetConfig& config, int64_t seed, int device, int dtype) {
    UNetModel m;
    *static_cast<std::shared_ptr<models::UNet2DConditionModel>*>(m.impl_) =
        build_random<models::UNet2DConditionModel>(config, seed, placement_of(device, dtype));
    return m;
}

UNetModel UNetModel::load_single_file(const UNetConfig& config, const SingleFileCheckpoint& checkpoint, int device,
                                      int dtype) {
    auto ck = HandleAccess::checkpoint(checkpoint);
    UNetModel m;
    *static_cast<std::shared_ptr<models::UNet2DConditionModel>*>(m.impl_) =
        build_from_checkpoint<models::UNet2DConditionModel>(config, *ck, models::SgmKeyMap::unet(config), {},
                                                            placement_of(device, dtype));
    return m;
}

int UNetModel::device() const { return device_code(get<models::UNet2DConditionModel>(impl_).placement()); }
int UNetModel::dtype() const { return dtype_code(get<models::UNet2DConditionModel>(impl_).placement()); }

Tensor UNetModel::forward(const Tensor& sample, const Tensor& timestep, const Tensor& encoder_hidden_states,
                          const Tensor& text_embeds, const Tensor& time_ids) const {
    const models::UNet2DConditionModel& model = get<models::UNet2DConditionModel>(impl_);
    const nn::Placement& p = model.placement();
    return out_f32(model.forward(placed(core(sample), p), core(timestep), placed(core(encoder_hidden_states), p),
                                 placed(core(text_embeds), p), moved(core(time_ids), p)));
}

void UNetModel::set_cuda_graphs(bool enabled) const { get<models::UNet2DConditionModel>(impl_).set_cuda_graphs(enabled); }
bool UNetModel::cuda_graphs() const { return get<models::UNet2DConditionModel>(impl_).cuda_graphs(); }

namespace {
Tensor weight_copy(const nn::WeightTable& table, const std::string& key) {
    sdxl::Tensor t = table.find(key);
    if (!t.defined()) fail(sdxl::ErrorCode::NOT_FOUND, "the model has no weight '", key, "'");
    return wrap(t.to(sdxl::Device::CPU).to(sdxl::DType::F32).clone());
}
}  // namespace

std::vector<std::string> UNetModel::set_loras(const LoraList& loras) const {
    return get<models::UNet2DConditionModel>(impl_).set_loras(HandleAccess::loras(loras));
}

Tensor UNetModel::weight(const std::string& key) const {
    return weight_copy(*get<models::UNet2DConditionModel>(impl_).weight_table(), key);
}

std::vector<std::string> ClipTextModel::set_loras(const LoraList& loras, const std::string& component) const {
    if (component != "text_encoder" && component != "text_encoder_2")
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, "set_loras: component must be text_encoder or text_encoder_2, got '",
             component, "'");
    return get<models::ClipTextModel>(impl_).set_loras(HandleAccess::loras(loras), component);
}

Tensor ClipTextModel::weight(const std::string& key) const {
    return weight_copy(*get<models::ClipTextModel>(impl_).weight_table(), key);
}

VaeModel VaeModel::load(const VaeConfig& config, const std::vector<std::string>& weight_files, int device,
                        int dtype) {
    VaeModel m;
    // One file: diffusers-named or an LDM / A1111 VAE download, told apart by its keys; several: diffusers shards.
    *static_cast<std::shared_ptr<models::AutoencoderKL>*>(m.impl_) = build_from_source<models::AutoencoderKL>(
        config,
        weight_files.size() == 1 ? models::vae_file_source(config, weight_files[0]) : nn::safetensors_source(weight_files),
        {}, placement_of(device, dtype));
    return m;
}

VaeModel VaeModel::random(const VaeConfig& config, int64_t seed, int device, int dtype) {
    VaeModel m;
    *static_cast<std::shared_ptr<models::AutoencoderKL>*>(m.impl_) =
        build_random<models::AutoencoderKL>(config, seed, placement_of(device, dtype));
    return m;
}

VaeModel VaeModel::load_single_file(const VaeConfig& config, const SingleFileCheckpoint& checkpoint, int device,
                                    int dtype) {
    auto ck = HandleAccess::checkpoint(checkpoint);
    VaeModel m;
    *static_cast<std::shared_ptr<models::AutoencoderKL>*>(m.impl_) = build_from_checkpoint<models::AutoencoderKL>(
        config, *ck, models::SgmKeyMap::vae(config), {}, placement_of(device, dtype));
    return m;
}

int VaeModel::device() const { return device_code(get<models::AutoencoderKL>(impl_).placement()); }
int VaeModel::dtype() const { return dtype_code(get<models::AutoencoderKL>(impl_).placement()); }

namespace {

models::AutoencoderKL& vae_mut(void* p) { return const_cast<models::AutoencoderKL&>(get<models::AutoencoderKL>(p)); }

models::VaeTiling vae_tiling(const models::AutoencoderKL& model, int mode, int64_t tile_sample_size, double overlap) {
    models::VaeTiling t = model.tiling();  // keeps the model's oom_fallback
    t.mode = mode;
    t.tile_sample_size = tile_sample_size;
    t.overlap = overlap;
    return t;
}

TensorList distribution_list(const models::LatentDistribution& d) {
    TensorList list;
    list.add(out_f32(d.mean));
    list.add(out_f32(d.logvar));
    list.add(out_f32(d.std));
    return list;
}

}  // namespace

Tensor VaeModel::decode(const Tensor& z) const {
    const models::AutoencoderKL& model = get<models::AutoencoderKL>(impl_);
    return out_f32(model.decode(placed(core(z), model.placement())));
}

TensorList VaeModel::encode(const Tensor& image) const {
    const models::AutoencoderKL& model = get<models::AutoencoderKL>(impl_);
    return distribution_list(model.encode(placed(core(image), model.placement())));
}

Tensor VaeModel::decode_with(const Tensor& z, int mode, int64_t tile_sample_size, double overlap) const {
    const models::AutoencoderKL& model = get<models::AutoencoderKL>(impl_);
    return out_f32(model.decode(placed(core(z), model.placement()), vae_tiling(model, mode, tile_sample_size, overlap)));
}

TensorList VaeModel::encode_with(const Tensor& image, int mode, int64_t tile_sample_size, double overlap) const {
    const models::AutoencoderKL& model = get<models::AutoencoderKL>(impl_);
    return distribution_list(
        model.encode(placed(core(image), model.placement()), vae_tiling(model, mode, tile_sample_size, overlap)));
}

void VaeModel::set_tiling(int mode, int64_t tile_sample_size, double overlap) {
    models::AutoencoderKL& model = vae_mut(impl_);
    model.set_tiling(vae_tiling(model, mode, tile_sample_size, overlap));
}

int VaeModel::tiling_mode() const { return get<models::AutoencoderKL>(impl_).tiling().mode; }

int64_t VaeModel::tile_sample_size() const {
    const models::AutoencoderKL& model = get<models::AutoencoderKL>(impl_);
    return model.tile_sample_size(model.tiling());
}

double VaeModel::tile_overlap() const { return get<models::AutoencoderKL>(impl_).tiling().overlap; }

void VaeModel::set_oom_fallback(bool enabled) {
    models::AutoencoderKL& model = vae_mut(impl_);
    models::VaeTiling t = model.tiling();
    t.oom_fallback = enabled;
    model.set_tiling(t);
}

bool VaeModel::oom_fallback() const { return get<models::AutoencoderKL>(impl_).tiling().oom_fallback; }

}  // namespace sdxl::api

namespace sdxl::api {

std::shared_ptr<const models::UNet2DConditionModel> HandleAccess::unet(const UNetModel& handle) {
    auto& ptr = *static_cast<std::shared_ptr<models::UNet2DConditionModel>*>(handle.impl_);
    if (!ptr) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "UNet handle is empty");
    return ptr;
}

}  // namespace sdxl::api
