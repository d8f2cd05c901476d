// LoraFile / LoraList of sdxl.h and the models' set_loras (models/lora.h).
#include <memory>

#include "api/handles.h"
#include "core/error.h"
#include "models/clip_text.h"
#include "models/lora.h"
#include "models/unet2d_condition.h"

namespace sdxl::api {

using LoraPtr = std::shared_ptr<const models::LoraFile>;
using Entries = HandleAccess::LoraEntries;

std::shared_ptr<const models::LoraFile> HandleAccess::lora(const LoraFile& handle) {
    const LoraPtr& p = *static_cast<LoraPtr*>(handle.impl_);
    if (!p) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "LoRA handle is empty");
    return p;
}

const Entries& HandleAccess::loras(const LoraList& handle) { return *static_cast<Entries*>(handle.impl_); }

LoraFile::LoraFile() : impl_(new LoraPtr()) {}
LoraFile::LoraFile(const LoraFile& other) : impl_(new LoraPtr(*static_cast<LoraPtr*>(other.impl_))) {}
LoraFile::~LoraFile() { delete static_cast<LoraPtr*>(impl_); }
LoraFile& LoraFile::operator=(const LoraFile& other) {
    *static_cast<LoraPtr*>(impl_) = *static_cast<LoraPtr*>(other.impl_);
    return *this;
}

LoraFile LoraFile::open(const std::string& path, bool lenient) {
    LoraFile f;
    *static_cast<LoraPtr*>(f.impl_) = models::LoraFile::open(path, lenient);
    return f;
}

std::string LoraFile::path() const { return HandleAccess::lora(*this)->path(); }
std::string LoraFile::format() const { return HandleAccess::lora(*this)->format(); }
bool LoraFile::lenient() const { return HandleAccess::lora(*this)->lenient(); }
int64_t LoraFile::module_count() const { return int64_t(HandleAccess::lora(*this)->modules().size()); }
std::vector<std::string> LoraFile::components() const {
    std::vector<std::string> out;
    for (const char* c : {"unet", "text_encoder", "text_encoder_2"})
        for (const auto& m : HandleAccess::lora(*this)->modules())
            if (m.component == c) {
                out.push_back(c);
                break;
            }
    return out;
}
std::vector<std::string> LoraFile::ignored_keys() const { return HandleAccess::lora(*this)->ignored(); }

LoraList::LoraList() : impl_(new Entries()) {}
LoraList::LoraList(const LoraList& other) : impl_(new Entries(*static_cast<Entries*>(other.impl_))) {}
LoraList::~LoraList() { delete static_cast<Entries*>(impl_); }
LoraList& LoraList::operator=(const LoraList& other) {
    *static_cast<Entries*>(impl_) = *static_cast<Entries*>(other.impl_);
    return *this;
}
void LoraList::add(const LoraFile& lora, double scale, bool fused) {
    static_cast<Entries*>(impl_)->push_back(models::LoraEntry{HandleAccess::lora(lora), scale, fused});
}
int64_t LoraList::size() const { return int64_t(static_cast<Entries*>(impl_)->size()); }

}  // namespace sdxl::api
