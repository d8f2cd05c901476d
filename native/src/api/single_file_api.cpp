// SingleFileCheckpoint of sdxl.h: an opened SGM/A1111 checkpoint and its key maps (models/single_file.h).
#include <memory>

#include "api/handles.h"
#include "core/error.h"
#include "models/single_file.h"

namespace sdxl::api {

using CheckpointPtr = std::shared_ptr<models::SgmCheckpoint>;

std::shared_ptr<models::SgmCheckpoint> HandleAccess::checkpoint(const SingleFileCheckpoint& handle) {
    const CheckpointPtr& p = *static_cast<CheckpointPtr*>(handle.impl_);
    if (!p) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "single-file checkpoint handle is empty");
    return p;
}

SingleFileCheckpoint::SingleFileCheckpoint() : impl_(new CheckpointPtr()) {}
SingleFileCheckpoint::SingleFileCheckpoint(const SingleFileCheckpoint& other)
    : impl_(new CheckpointPtr(*static_cast<CheckpointPtr*>(other.impl_))) {}
SingleFileCheckpoint::~SingleFileCheckpoint() { delete static_cast<CheckpointPtr*>(impl_); }
SingleFileCheckpoint& SingleFileCheckpoint::operator=(const SingleFileCheckpoint& other) {
    *static_cast<CheckpointPtr*>(impl_) = *static_cast<CheckpointPtr*>(other.impl_);
    return *this;
}

SingleFileCheckpoint SingleFileCheckpoint::open(const std::string& path) {
    SingleFileCheckpoint c;
    *static_cast<CheckpointPtr*>(c.impl_) = models::SgmCheckpoint::open(path);
    return c;
}

std::string SingleFileCheckpoint::path() const { return HandleAccess::checkpoint(*this)->path(); }
bool SingleFileCheckpoint::is_refiner() const {
    return HandleAccess::checkpoint(*this)->kind() == models::SgmKind::SDXL_REFINER;
}
std::string SingleFileCheckpoint::storage_dtype() const { return HandleAccess::checkpoint(*this)->storage_dtype(); }
bool SingleFileCheckpoint::has_component(const std::string& component) const {
    return HandleAccess::checkpoint(*this)->has(component);
}

namespace {
std::string source_of(const models::SgmKeyMap& map, const std::string& key) {
    models::SgmSource s;
    return map.to_checkpoint(key, &s) ? s.describe() : std::string();
}
}  // namespace

std::string SingleFileCheckpoint::unet_source(const UNetConfig& config, const std::string& key) const {
    HandleAccess::checkpoint(*this);
    return source_of(models::SgmKeyMap::unet(config), key);
}

std::string SingleFileCheckpoint::vae_source(const VaeConfig& config, const std::string& key) const {
    HandleAccess::checkpoint(*this);
    return source_of(models::SgmKeyMap::vae(config), key);
}

std::string SingleFileCheckpoint::text_encoder_source(const ClipTextConfig& config, const std::string& component,
                                                      const std::string& key) const {
    auto ck = HandleAccess::checkpoint(*this);
    if (component == "text_encoder") return source_of(models::SgmKeyMap::clip_l(), key);
    if (component == "text_encoder_2") return source_of(models::SgmKeyMap::open_clip(config, ck->open_clip_prefix()), key);
    fail(sdxl::ErrorCode::INVALID_ARGUMENT, "text_encoder_source: component must be text_encoder or text_encoder_2, got '",
         component, "'");
}

std::vector<std::string> SingleFileCheckpoint::diffusers_keys(const UNetConfig& unet, const VaeConfig& vae,
                                                              const ClipTextConfig& text_encoder_2,
                                                              const std::string& key) const {
    auto ck = HandleAccess::checkpoint(*this);
    for (const auto& map : {models::SgmKeyMap::unet(unet), models::SgmKeyMap::vae(vae), models::SgmKeyMap::clip_l(),
                            models::SgmKeyMap::open_clip(text_encoder_2, ck->open_clip_prefix())}) {
        if (key.compare(0, map.prefix().size(), map.prefix()) == 0) return map.to_diffusers(key);
    }
    return {};
}

}  // namespace sdxl::api
