// Single-file (SGM / A1111) SDXL checkpoints (models/single_file.h):
// - the key map against the reference keymap_fp32.json (diffusers' conversion script's layout, every tensor found
//   by value match): every diffusers tensor's checkpoint key, row range and transpose, and the inverse map over
//   every key of the file;
// - weights bit-identical to the diffusers folder (fp32), and equal to the folder weights rounded to fp16 for the
//   fp16 file (the single_file group's tolerances: exact);
// - the refiner topology (no reference file exists) and bf16 storage: checkpoints written here from the tiny folders
//   by the inverse map, read back exactly;
// - refusals naming what a file looks like (SD 1.x/2.x, SD3, Flux, LoRA, pickles) and mutated checkpoints (missing
//   keys, wrong shapes and dtypes, truncation) that give sdxl::Error, never a crash.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "check.h"
#include "mini_json.h"
#include "test_tensors.h"
#include "core/error.h"
#include "core/half.h"
#include "io/safetensors.h"
#include "models/single_file.h"
#include "sdxl/sdxl.h"

using namespace sdxl;
using sdxl::models::SgmCheckpoint;
using sdxl::models::SgmKeyMap;
using sdxl::models::SgmOp;
using sdxl::models::SgmSource;
namespace json = sdxl_test::json;

namespace {

std::string reference_root() {
    if (const char* env = std::getenv("SDXL4J_REFERENCE")) return env;
    return SDXL_REFERENCE_DIR;
}

// The tiny reference models' configs (models/tiny-sdxl-{base,refiner}/*/config.json).
api::ClipTextConfig tiny_text_encoder(bool second) {
    api::ClipTextConfig c = second ? api::ClipTextConfig::sdxl_text_encoder_2() : api::ClipTextConfig::sdxl_text_encoder();
    c.hidden_size = second ? 48 : 32;
    c.intermediate_size = second ? 96 : 64;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 4;
    c.max_position_embeddings = 77;
    c.hidden_act = second ? "gelu" : "quick_gelu";
    c.with_projection = second;
    c.projection_dim = second ? 24 : 32;
    c.eos_token_id = 2;
    return c;
}

api::UNetConfig tiny_unet(bool refiner) {
    api::UNetConfig c = refiner ? api::UNetConfig::sdxl_refiner() : api::UNetConfig::sdxl_base();
    c.layers_per_block = 2;
    c.norm_num_groups = 8;
    c.use_linear_projection = true;
    c.addition_time_embed_dim = 8;
    if (refiner) {
        c.block_out_channels = {16, 32, 32, 32};
        c.transformer_layers_per_block = {2, 2, 2, 2};
        c.num_attention_heads = {2, 4, 4, 4};
        c.cross_attention_dim = 48;
        c.projection_class_embeddings_input_dim = 64;
    } else {
        c.block_out_channels = {16, 32, 32};
        c.transformer_layers_per_block = {1, 1, 2};
        c.num_attention_heads = {2, 4, 4};
        c.cross_attention_dim = 80;
        c.projection_class_embeddings_input_dim = 72;
    }
    return c;
}

api::VaeConfig tiny_vae() {
    api::VaeConfig c = api::VaeConfig::sdxl();
    c.block_out_channels = {16, 32, 32, 32};
    c.layers_per_block = 2;
    c.norm_num_groups = 8;
    c.sample_size = 64;
    return c;
}

struct Component {
    std::string name;    // diffusers component folder
    std::string file;    // weight file in it
    SgmKeyMap map;
};

std::vector<Component> components(bool refiner) {
    std::vector<Component> out;
    const std::string g = refiner ? "conditioner.embedders.0.model." : "conditioner.embedders.1.model.";
    out.push_back({"unet", "diffusion_pytorch_model.safetensors", SgmKeyMap::unet(tiny_unet(refiner))});
    out.push_back({"vae", "diffusion_pytorch_model.safetensors", SgmKeyMap::vae(tiny_vae())});
    if (!refiner) out.push_back({"text_encoder", "model.safetensors", SgmKeyMap::clip_l()});
    out.push_back({"text_encoder_2", "model.safetensors", SgmKeyMap::open_clip(tiny_text_encoder(true), g)});
    return out;
}

// ---- a small safetensors writer (tensors back to back, header padded to 8 bytes)

struct Spec {
    std::string name, dtype;
    Shape shape;
    std::string bytes;
};

std::string serialize(const std::vector<Spec>& specs) {
    std::string h = "{";
    uint64_t off = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
        const Spec& s = specs[i];
        h += (i ? "," : "") + std::string("\"") + s.name + "\":{\"dtype\":\"" + s.dtype + "\",\"shape\":[";
        for (size_t d = 0; d < s.shape.size(); ++d) h += (d ? "," : "") + std::to_string(s.shape[d]);
        h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + s.bytes.size()) + "]}";
        off += s.bytes.size();
    }
    h += "}";
    while (h.size() % 8) h += ' ';
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(h.size()) >> (8 * i)) & 0xff);
    out += h;
    for (const Spec& s : specs) out += s.bytes;
    return out;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string temp_path(const std::string& name) {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/sdxl_sf_" + std::to_string(::getpid()) + "_" + name;
}

// F32 tensor -> bytes of `dtype` (F32 / F16 / BF16, round to nearest even).
std::string encode(const Tensor& t, const std::string& dtype) {
    const Tensor c = t.contiguous();
    const float* p = c.data<float>();
    std::string out;
    if (dtype == "F32") {
        out.assign(reinterpret_cast<const char*>(p), size_t(c.numel()) * 4);
        return out;
    }
    out.resize(size_t(c.numel()) * 2);
    for (int64_t i = 0; i < c.numel(); ++i) {
        const uint16_t h = dtype == "F16" ? f32_to_f16(p[i]) : f32_to_bf16(p[i]);
        std::memcpy(&out[size_t(i) * 2], &h, 2);
    }
    return out;
}

float round_to(float x, const std::string& dtype) {
    if (dtype == "F16") return f16_to_f32(f32_to_f16(x));
    if (dtype == "BF16") return bf16_to_f32(f32_to_bf16(x));
    return x;
}

// Bit equality of `got` with the folder tensor rounded to `dtype`.
bool equal_rounded(const Tensor& got, const Tensor& folder, const std::string& dtype) {
    if (got.shape() != folder.shape()) return false;
    const Tensor a = got.contiguous(), b = folder.contiguous();
    for (int64_t i = 0; i < a.numel(); ++i) {
        const float want = round_to(b.data<float>()[i], dtype);
        if (std::memcmp(&a.data<float>()[i], &want, 4) != 0) return false;
    }
    return true;
}

// An SGM checkpoint written from a diffusers folder by our inverse map: each checkpoint key gets its tensor back
// (q/k/v rows concatenated into in_proj, text_projection transposed back, VAE attention linears as 1x1 convs).
std::vector<Spec> checkpoint_from_folder(const std::string& folder, bool refiner, const std::string& dtype) {
    std::map<std::string, Spec> by_key;
    std::map<std::string, std::vector<std::pair<int64_t, Tensor>>> fused;  // in_proj parts by row offset
    for (const Component& c : components(refiner)) {
        auto f = io::SafetensorsFile::open(folder + "/" + c.name + "/" + c.file);
        for (const auto& info : f->header().tensors) {
            if (info.name == "text_model.embeddings.position_ids") continue;
            SgmSource s;
            if (!c.map.to_checkpoint(info.name, &s)) {
                CHECK_MSG(false, c.name << ": no checkpoint key for " << info.name);
                continue;
            }
            Tensor t = f->get_f32(info.name);
            if (s.op == SgmOp::ROWS) {
                fused[s.key].push_back({s.row_begin, t});
                continue;
            }
            if (s.op == SgmOp::TRANSPOSE) t = t.transpose(0, 1).contiguous();
            if (s.op == SgmOp::CONV1X1_AS_LINEAR) t = t.view({t.size(0), t.size(1), 1, 1});
            CHECK_MSG(!by_key.count(s.key), "two diffusers tensors map to " << s.key);
            by_key[s.key] = Spec{s.key, dtype, t.shape(), encode(t, dtype)};
        }
    }
    for (auto& [key, parts] : fused) {
        std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        Shape shape = parts[0].second.shape();
        shape[0] *= int64_t(parts.size());
        std::string bytes;
        for (const auto& p : parts) bytes += encode(p.second, dtype);
        by_key[key] = Spec{key, dtype, shape, bytes};
    }
    std::vector<Spec> out;
    for (auto& kv : by_key) out.push_back(std::move(kv.second));
    return out;
}

// Opens a checkpoint and builds every component's model through the public API (strict: unused tensors fail).
void load_all(const std::string& path) {
    api::SingleFileCheckpoint ck = api::SingleFileCheckpoint::open(path);
    const bool refiner = ck.is_refiner();
    api::UNetModel::load_single_file(tiny_unet(refiner), ck);
    api::VaeModel::load_single_file(tiny_vae(), ck);
    if (!refiner) api::ClipTextModel::load_single_file(tiny_text_encoder(false), ck, "text_encoder");
    api::ClipTextModel::load_single_file(tiny_text_encoder(true), ck, "text_encoder_2");
}

}  // namespace

SDXL_TEST(test_single_file_keymap_matches_reference) {
    const std::string root = reference_root();
    const json::Value km = json::parse_file(root + "/cases/single_file/keymap_fp32.json");
    auto file = io::SafetensorsFile::open(root + "/models/single-file/tiny-sdxl-base.safetensors");
    size_t checked = 0;
    std::set<std::string> reference_keys;  // "component/diffusers key"
    for (const Component& c : components(false)) {
        for (const auto& [dkey, v] : km[c.name].fields) {
            reference_keys.insert(c.name + "/" + dkey);
            const std::string want = v.text();  // "key", "key[48:96] (k)", "key (transposed: .T)"
            const std::string want_key = want.substr(0, want.find_first_of("[ "));
            SgmSource s;
            if (!c.map.to_checkpoint(dkey, &s)) {
                CHECK_MSG(false, c.name << ": no rule for " << dkey);
                continue;
            }
            CHECK_MSG(s.key == want_key, c.name << "/" << dkey << ": ours " << s.describe() << ", reference " << want);
            const size_t lb = want.find('[');
            if (lb != std::string::npos) {
                const long b = std::strtol(want.c_str() + lb + 1, nullptr, 10);
                const long e = std::strtol(want.c_str() + want.find(':', lb) + 1, nullptr, 10);
                CHECK_MSG(s.op == SgmOp::ROWS && s.row_begin == b && s.row_end == e, dkey << ": ours " << s.describe());
            } else if (want.find("transposed") != std::string::npos) {
                CHECK_MSG(s.op == SgmOp::TRANSPOSE, dkey << ": ours " << s.describe());
            } else {
                CHECK_MSG(s.op == SgmOp::AS_IS || s.op == SgmOp::CONV1X1_AS_LINEAR, dkey << ": ours " << s.describe());
            }
            CHECK_MSG(file->find(s.key) != nullptr, s.key << " is not in the checkpoint");
            ++checked;
        }
    }
    CHECK_MSG(checked == 967, "checked " << checked << " of the reference's 967 tensors");
    // The inverse: every checkpoint key feeds exactly the reference's diffusers keys, and each maps back to it.
    std::set<std::string> ours;
    for (const auto& info : file->header().tensors) {
        bool found = false;
        for (const Component& c : components(false)) {
            if (info.name.compare(0, c.map.prefix().size(), c.map.prefix()) != 0) continue;
            found = true;
            const auto ds = c.map.to_diffusers(info.name);
            CHECK_MSG(!ds.empty(), "no diffusers key for " << info.name);
            for (const auto& d : ds) {
                SgmSource s;
                CHECK_MSG(c.map.to_checkpoint(d, &s) && s.key == info.name, info.name << " -> " << d << " -> " << s.key);
                ours.insert(c.name + "/" + d);
            }
        }
        CHECK_MSG(found, info.name << " belongs to no component");
    }
    CHECK_MSG(ours == reference_keys, "inverse map covers " << ours.size() << " keys, reference " << reference_keys.size());
}

SDXL_TEST(test_single_file_weights_match_folder_fp32_and_fp16) {
    const std::string root = reference_root();
    for (const std::string dtype : {"F32", "F16"}) {
        const std::string path =
            root + "/models/single-file/tiny-sdxl-base" + (dtype == "F16" ? ".fp16" : "") + ".safetensors";
        auto ck = SgmCheckpoint::open(path);
        CHECK(ck->kind() == models::SgmKind::SDXL_BASE);
        CHECK_MSG(ck->storage_dtype() == dtype, ck->storage_dtype());
        size_t n = 0, bad = 0;
        for (const Component& c : components(false)) {
            auto folder = io::SafetensorsFile::open(root + "/models/tiny-sdxl-base/" + c.name + "/" + c.file);
            auto src = ck->source(c.map);
            for (const auto& info : folder->header().tensors) {
                if (info.name == "text_model.embeddings.position_ids") continue;
                const Tensor want = folder->get_f32(info.name);
                CHECK_MSG(src->shape(info.name) == want.shape(), info.name);
                const Tensor got = src->load(info.name);
                if (!equal_rounded(got, want, dtype)) {
                    ++bad;
                    CHECK_MSG(false, dtype << " " << c.name << "/" << info.name << " differs from the folder");
                }
                ++n;
            }
        }
        CHECK_MSG(n == 967 && bad == 0, dtype << ": " << n << " tensors, " << bad << " differ");
        load_all(path);  // every component builds, no tensor left unused
    }
}

SDXL_TEST(test_single_file_f32_views_share_the_mapping) {
    // fp32 renames, in_proj rows and 1x1-conv reshapes are views into the mapped file; only text_projection copies.
    auto ck = SgmCheckpoint::open(reference_root() + "/models/single-file/tiny-sdxl-base.safetensors");
    const auto g = SgmKeyMap::open_clip(tiny_text_encoder(true), ck->open_clip_prefix());
    const Tensor fused = ck->file().get("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight");
    const Tensor k = ck->load(g, "text_model.encoder.layers.0.self_attn.k_proj.weight");
    CHECK(k.storage() == fused.storage());
    CHECK(k.shape() == (Shape{48, 48}));
    const Tensor proj = ck->load(SgmKeyMap::vae(tiny_vae()), "decoder.mid_block.attentions.0.to_q.weight");
    CHECK(proj.storage() == fused.storage());
    CHECK(proj.shape() == (Shape{32, 32}));
    CHECK(ck->load(g, "text_projection.weight").storage() != fused.storage());
}

SDXL_TEST(test_single_file_refiner_and_bf16_round_trip) {
    const std::string root = reference_root();
    for (const bool refiner : {true, false}) {
        const std::string folder = root + "/models/tiny-sdxl-" + (refiner ? "refiner" : "base");
        const std::string dtype = refiner ? "F32" : "BF16";
        const std::string path = temp_path(std::string(refiner ? "refiner" : "base_bf16") + ".safetensors");
        write_file(path, serialize(checkpoint_from_folder(folder, refiner, dtype)));
        auto ck = SgmCheckpoint::open(path);
        CHECK(ck->kind() == (refiner ? models::SgmKind::SDXL_REFINER : models::SgmKind::SDXL_BASE));
        CHECK(ck->has("text_encoder") == !refiner);
        size_t n = 0;
        for (const Component& c : components(refiner)) {
            auto f = io::SafetensorsFile::open(folder + "/" + c.name + "/" + c.file);
            auto src = ck->source(c.map);
            for (const auto& info : f->header().tensors) {
                if (info.name == "text_model.embeddings.position_ids") continue;
                CHECK_MSG(equal_rounded(src->load(info.name), f->get_f32(info.name), dtype), info.name);
                ++n;
            }
        }
        CHECK_MSG(n > 500, n);
        load_all(path);
        if (refiner) {
            api::SingleFileCheckpoint h = api::SingleFileCheckpoint::open(path);
            sdxl_test::expect_error([&] { api::ClipTextModel::load_single_file(tiny_text_encoder(false), h, "text_encoder"); },
                                    ErrorCode::NOT_FOUND, "refiner");
            // SGM numbering of the refiner's 4 levels: level 0 has no attention, so its upsampler is block .1.
            CHECK(h.unet_source(tiny_unet(true), "up_blocks.0.upsamplers.0.conv.weight") ==
                  "model.diffusion_model.output_blocks.2.1.conv.weight");
            CHECK(h.unet_source(tiny_unet(true), "down_blocks.3.resnets.1.conv2.weight") ==
                  "model.diffusion_model.input_blocks.11.0.out_layers.3.weight");
        }
        std::remove(path.c_str());
    }
}

SDXL_TEST(test_single_file_refuses_other_models) {
    auto f32 = [](const std::string& name, Shape shape) {
        return Spec{name, "F32", shape, std::string(size_t(shape_numel(shape)) * 4, '\0')};
    };
    struct Case {
        std::vector<std::string> keys;
        const char* expect;
    };
    const std::vector<Case> cases = {
        {{"model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.text_model.final_layer_norm.weight",
          "first_stage_model.decoder.conv_in.weight"},
         "Stable Diffusion 1.x"},
        {{"model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.model.ln_final.weight"}, "Stable Diffusion 2.x"},
        {{"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "text_encoders.clip_l.x"}, "Stable Diffusion 3"},
        {{"model.diffusion_model.double_blocks.0.img_attn.qkv.weight"}, "Flux"},
        {{"double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"}, "Flux"},
        {{"lora_unet_input_blocks_4_1_proj_in.lora_down.weight"}, "LoRA"},
        {{"clip_l", "clip_g"}, "textual-inversion"},
        {{"down_blocks.0.resnets.0.conv1.weight"}, "diffusers"},
        {{"foo.bar"}, "no known layout"},
        {{"model.diffusion_model.input_blocks.0.0.weight"}, "UNet-only"},
        {{"model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.0.transformer.text_model.x",
          "conditioner.embedders.1.model.ln_final.weight"},
         "without its VAE"},
        {{"model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.0.transformer.text_model.x",
          "conditioner.embedders.1.model.ln_final.weight", "first_stage_model.x", "something_else"},
         "outside its components"},
    };
    const std::string path = temp_path("refuse.safetensors");
    for (const Case& c : cases) {
        std::vector<Spec> specs;
        for (const auto& k : c.keys) specs.push_back(f32(k, {2}));
        std::sort(specs.begin(), specs.end(), [](const Spec& a, const Spec& b) { return a.name < b.name; });
        write_file(path, serialize(specs));
        sdxl_test::expect_error([&] { SgmCheckpoint::open(path); }, ErrorCode::BAD_MODEL_FILE, c.expect);
    }
    // Pickles are never read: by name, and by content under a .safetensors name.
    const std::string ckpt = temp_path("model.ckpt");
    write_file(ckpt, std::string("\x80\x02}q\x00.", 6));
    sdxl_test::expect_error([&] { api::SingleFileCheckpoint::open(ckpt); }, ErrorCode::BAD_MODEL_FILE, "Convert it to .safetensors");
    write_file(path, std::string("PK\x03\x04" "archive/data.pkl", 20));
    sdxl_test::expect_error([&] { SgmCheckpoint::open(path); }, ErrorCode::BAD_MODEL_FILE, "never unpickles");
    std::remove(ckpt.c_str());
    std::remove(path.c_str());
    sdxl_test::expect_error([&] { SgmCheckpoint::open(temp_path("missing.safetensors")); }, ErrorCode::NOT_FOUND, "");
}

// Mutations of the fp16 tiny checkpoint (missing, renamed and extra keys; wrong shapes and dtypes; truncated
// headers and data; flipped header bytes): open + build every component gives sdxl::Error or loads, never crashes.
SDXL_TEST(test_single_file_mutated_checkpoints_never_crash) {
    const std::string root = reference_root();
    auto base = io::SafetensorsFile::open(root + "/models/single-file/tiny-sdxl-base.fp16.safetensors");
    std::vector<Spec> specs;
    for (const auto& info : base->header().tensors) {
        const Tensor t = base->get(info.name);
        specs.push_back(Spec{info.name, info.dtype_name, info.shape,
                             std::string(static_cast<const char*>(t.raw_data()), size_t(t.numel()) * 2)});
    }
    const std::string path = temp_path("fuzz.safetensors");
    std::mt19937_64 rng(13);
    auto pick = [&](size_t n) { return size_t(rng() % n); };
    int errors = 0, loaded = 0;
    const int kMutants = 300;
    for (int m = 0; m < kMutants; ++m) {
        std::vector<Spec> s = specs;
        std::string bytes;
        const int kind = m % 8;
        Spec& t = s[pick(s.size())];
        switch (kind) {
            case 0: s.erase(s.begin() + long(&t - s.data())); break;                         // missing key
            case 1: t.name += "_renamed"; break;                                             // unknown key
            case 2:                                                                          // wrong shape, same bytes
                if (t.shape.size() >= 2) std::swap(t.shape[0], t.shape[1]);
                else t.shape = {1, t.shape.empty() ? 1 : t.shape[0]};
                break;
            case 3: t.dtype = (rng() & 1) ? "I16" : "U16"; break;                            // not a float dtype
            case 4: t.dtype = "F32"; t.bytes += t.bytes; t.shape.push_back(1); t.shape[0] *= 1; break;  // F32 data
            case 5: if (!t.shape.empty()) { t.shape[0] += 1; t.bytes += std::string(t.bytes.size() / std::max<int64_t>(1, t.shape[0] - 1), '\0'); } break;
            default: break;
        }
        std::sort(s.begin(), s.end(), [](const Spec& a, const Spec& b) { return a.name < b.name; });
        bytes = serialize(s);
        if (kind == 6) bytes.resize(pick(bytes.size()));                                 // truncated anywhere
        if (kind == 7) {                                                                 // flipped header bytes
            const size_t hlen = size_t(uint8_t(bytes[0])) | size_t(uint8_t(bytes[1])) << 8 | size_t(uint8_t(bytes[2])) << 16;
            for (int i = 0; i < 3; ++i) bytes[8 + pick(std::min(hlen, bytes.size() - 8))] = char(rng());
        }
        write_file(path, bytes);
        try {
            load_all(path);
            ++loaded;
        } catch (const Error& e) {
            CHECK_MSG(e.message().size() > 10, "an error without a message");
            ++errors;
        }
    }
    std::remove(path.c_str());
    CHECK_MSG(errors + loaded == kMutants, errors << " errors, " << loaded << " loaded");
    CHECK_MSG(errors > kMutants / 2, "only " << errors << " of " << kMutants << " mutants were refused");
}
