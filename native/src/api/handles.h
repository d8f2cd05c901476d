// Conversions between the public handles of sdxl.h and the core's types, shared by the facade's files.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "sdxl/sdxl.h"

namespace sdxl::models {
class UNet2DConditionModel;
class SgmCheckpoint;
class LoraFile;
struct LoraEntry;
}
namespace sdxl::schedulers {
class Scheduler;
}

namespace sdxl::api {

const sdxl::Tensor& core(const Tensor& t);
Tensor wrap(sdxl::Tensor t);

// The core objects behind model and scheduler handles (for facade files that combine them, e.g. the
// pipeline). Throw INVALID_ARGUMENT for an empty handle.
struct HandleAccess {
    static std::shared_ptr<const models::UNet2DConditionModel> unet(const UNetModel& handle);
    static std::shared_ptr<schedulers::Scheduler> scheduler(const Scheduler& handle);
    static std::shared_ptr<models::SgmCheckpoint> checkpoint(const SingleFileCheckpoint& handle);
    static std::shared_ptr<const models::LoraFile> lora(const LoraFile& handle);
    using LoraEntries = std::vector<models::LoraEntry>;
    static const LoraEntries& loras(const LoraList& handle);
};

}  // namespace sdxl::api
