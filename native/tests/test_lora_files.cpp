// LoRA files through the native loader (models/lora.h, via the public API: LoraFile::open and the models'
// set_loras), without a JVM: mutated copies of the three reference LoRA files (cases/lora: kohya SGM names and
// diffusers-path names in fp16, PEFT in fp32) fused into the tiny base model's UNet and both text encoders give
// sdxl::Error with BAD_MODEL_FILE naming the file or the modules, or fuse; never a crash; and after them all every
// weight is bit-identical to before (a refused file changes nothing, unfusing restores exactly). Java's
// LoraReferenceTest runs more through the pipeline API.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "check.h"
#include "mutated_files.h"
#include "tiny_models.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "sdxl/sdxl.h"

using namespace sdxl;
namespace mu = sdxl_test::mutants;

namespace {

mu::Base lora_base(const std::string& path, const std::string& what) {
    auto f = io::SafetensorsFile::open(path);
    std::vector<mu::RawTensor> raw;
    for (const auto& info : f->header().tensors) {
        const sdxl::Tensor t = f->get(info.name);
        raw.push_back({info.name, info.dtype_name, info.shape,
                       std::string(static_cast<const char*>(t.raw_data()), size_t(info.end - info.begin))});
    }
    return mu::make_base(what, raw);
}

// Every weight of the models as bytes, to compare before and after.
std::vector<std::string> snapshot(const api::UNetModel& unet, const std::vector<api::ClipTextModel>& tes,
                                  const std::vector<std::vector<std::string>>& keys) {
    std::vector<std::string> out;
    for (size_t c = 0; c < keys.size(); ++c) {
        for (const auto& k : keys[c]) {
            const api::Tensor t = c == 0 ? unet.weight(k) : tes[c - 1].weight(k);
            std::string bytes(size_t(t.numel()) * 4, '\0');
            t.copy_to_bytes(bytes.data(), int64_t(bytes.size()));
            out.push_back(std::move(bytes));
        }
    }
    return out;
}

}  // namespace

SDXL_TEST(test_lora_mutated_files_never_crash) {
    const std::string root = sdxl_test::reference_root();
    const std::string folder = root + "/models/tiny-sdxl-base/";
    const api::UNetModel unet =
        api::UNetModel::load(sdxl_test::tiny_unet(false), {folder + "unet/diffusion_pytorch_model.safetensors"});
    const std::vector<api::ClipTextModel> tes = {
        api::ClipTextModel::load(sdxl_test::tiny_text_encoder(false), {folder + "text_encoder/model.safetensors"}),
        api::ClipTextModel::load(sdxl_test::tiny_text_encoder(true), {folder + "text_encoder_2/model.safetensors"})};
    std::vector<std::vector<std::string>> keys;
    for (const char* f : {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                          "text_encoder_2/model.safetensors"}) {
        keys.emplace_back();
        const auto file = io::SafetensorsFile::open(folder + f);
        for (const auto& info : file->header().tensors) {
            try {  // the weights the model computes with (embedding tables are looked up on the host, not kept)
                (keys.size() == 1 ? unet.weight(info.name) : tes[keys.size() - 2].weight(info.name));
                keys.back().push_back(info.name);
            } catch (const Error&) {
            }
        }
    }
    const std::vector<std::string> before = snapshot(unet, tes, keys);

    const std::string lora = root + "/cases/lora/";
    const std::vector<mu::Base> bases = {
        lora_base(lora + "kohya_sgm_fp16.lora.safetensors", "kohya SGM names"),
        lora_base(lora + "kohya_diffusers_names_fp16.lora.safetensors", "kohya diffusers names"),
        lora_base(lora + "peft_fp32.lora.safetensors", "PEFT")};
    const std::vector<std::string> foreign = {"lora_unet_", "lora_te3_", "unet.", "text_encoder_3.", "model.diffusion_model.",
                                              "lycoris_", "first_stage_model.", "clip_l.", "bogus."};
    const char* dir = std::getenv("TMPDIR");
    const std::string path = std::string(dir ? dir : "/tmp") + "/sdxl_lora_" + std::to_string(::getpid()) + ".safetensors";
    api::LoraList none;
    auto fuse = [&](bool lenient) {
        api::LoraList list;
        list.add(api::LoraFile::open(path, lenient), 0.9);
        try {
            unet.set_loras(list);
            tes[0].set_loras(list, "text_encoder");
            tes[1].set_loras(list, "text_encoder_2");
        } catch (...) {  // a module one model refused: the others give theirs back, as the pipeline does
            unet.set_loras(none);
            tes[0].set_loras(none, "text_encoder");
            tes[1].set_loras(none, "text_encoder_2");
            throw;
        }
        unet.set_loras(none);
        tes[0].set_loras(none, "text_encoder");
        tes[1].set_loras(none, "text_encoder_2");
    };
    for (const mu::Base& b : bases) {  // unmutated, every file fuses
        mu::write(path, mu::unmutated(b));
        fuse(false);
    }
#ifdef SDXL_CUDA_EMULATOR
    const int kMutants = 70;  // the loader runs on the CPU alike in both native runners
#else
    const int kMutants = 700;
#endif
    std::mt19937_64 rng(17);
    mu::Tally tally;
    for (int m = 0; m < kMutants; ++m) {
        const mu::Base& base = bases[size_t(m) % bases.size()];
        const mu::Mutant mutant = mu::mutate(base, (m / 3) % mu::kKindCount, rng, foreign);  // every kind on each file
        mu::write(path, mutant);
        try {
            fuse(m % 5 == 0);  // some lenient: unknown keys are skipped then
            tally.load(mutant.kind);
        } catch (const Error& e) {
            CHECK_MSG(e.code() == ErrorCode::BAD_MODEL_FILE, base.what << ", " << mutant.note << ": " << e.what());
            CHECK_MSG(e.message().find(path) != std::string::npos || e.message().find("match no weight") != std::string::npos,
                      mutant.note << ": the message names neither the file nor the modules: " << e.message());
            tally.refuse(mutant.kind, e.code());
        }
    }
    std::remove(path.c_str());
    tally.print("mutated LoRA files (native)");
    CHECK_MSG(tally.refused + tally.loaded == kMutants, tally.refused << " errors, " << tally.loaded << " loaded");
    CHECK_MSG(tally.refused > kMutants * 7 / 10, "only " << tally.refused << " of " << kMutants << " were refused");
    const std::vector<std::string> after = snapshot(unet, tes, keys);
    size_t changed = 0;
    for (size_t i = 0; i < before.size(); ++i) changed += before[i] != after[i];
    CHECK_MSG(changed == 0 && before.size() > 600, changed << " of " << before.size() << " weights changed");
}
