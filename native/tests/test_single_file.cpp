// Single-file (SGM / A1111) SDXL checkpoints (models/single_file.h):
// - the key map against the reference keymap_fp32.json (diffusers' conversion script's layout, every tensor found
//   by value match): every diffusers tensor's checkpoint key, row range and transpose, and the inverse map over
//   every key of the file;
// - weights bit-identical to the diffusers folder (fp32), and equal to the folder weights rounded to fp16 for the
//   fp16 file (the single_file group's tolerances: exact);
// - the refiner topology (no reference file exists), bf16 and fp8 storage (F8_E4M3 / F8_E5M2 weights with F16 norms
//   and biases, as fp8 checkpoints mix them): checkpoints written here from the tiny folders by the inverse map,
//   read back exactly (fp8: the decode of the bits this file's own encoder wrote);
// - standalone LDM / A1111-layout VAE files (--vae FILE): detected from the keys, loaded through the same VAE key
//   map, with or without first_stage_model. and training leftovers;
// - refusals naming what a file looks like (SD 1.x/2.x, SD3, Flux, LoRA, pickles) and mutated checkpoints (missing
//   keys, wrong shapes and dtypes, truncation) that give sdxl::Error, never a crash.
#include <algorithm>
#include <cmath>
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
#include "mutated_files.h"
#include "tiny_models.h"
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
using sdxl_test::reference_root;
using sdxl_test::tiny_text_encoder;
using sdxl_test::tiny_unet;
using sdxl_test::tiny_vae;

namespace {

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

// float -> an 8-bit float with `mbits` mantissa bits and exponent bias `bias`, round to nearest even, written
// here from the formats' definitions (not core/half.h). As torch's .to(): float8_e4m3fn (3, 7) does not saturate,
// a value that rounds above 448 (and Inf/NaN) becomes NaN S.1111.111; float8_e5m2 (2, 15) overflows to Inf.
uint8_t to_float8(float x, int mbits, int bias) {
    const bool e4m3 = mbits == 3;
    const uint8_t sign = std::signbit(x) ? 0x80 : 0;
    const double a = std::fabs(double(x));
    const int top = (1 << (7 - mbits)) - 1;  // the all-ones exponent
    if (std::isnan(a) || (std::isinf(a) && e4m3)) return uint8_t(sign | 0x7f);
    if (std::isinf(a)) return uint8_t(sign | (top << mbits));
    if (a == 0) return sign;
    int e = 0;
    std::frexp(a, &e);                                                 // a = f * 2^e, f in [0.5, 1)
    int E = std::max(e - 1, 1 - bias);                                 // subnormals share the lowest exponent
    double q = std::nearbyint(std::ldexp(a, mbits - E));              // units of 2^(E - mbits), ties to even
    const double one = std::ldexp(1.0, mbits);
    if (q == 2 * one) q = one, ++E;                                    // rounded up into the next binade
    if (q < one) return uint8_t(sign | uint8_t(q));                    // subnormal (E is the lowest exponent)
    const int biased = E + bias, mant = int(q - one);
    if (e4m3 && (biased > top || (biased == top && mant == (1 << mbits) - 1))) return uint8_t(sign | 0x7f);
    if (!e4m3 && biased >= top) return uint8_t(sign | (top << mbits));  // Inf
    return uint8_t(sign | (biased << mbits) | mant);
}

// The value of an 8-bit float code, from the definition (NaN for e4m3fn's S.1111.111, Inf/NaN for e5m2's top exponent).
float from_float8(uint8_t b, int mbits, int bias) {
    const int top = (1 << (7 - mbits)) - 1, e = (b >> mbits) & top, m = b & ((1 << mbits) - 1);
    const double sign = (b & 0x80) ? -1.0 : 1.0;
    if (mbits == 3 && e == top && m == 7) return std::nanf("");
    if (mbits == 2 && e == top) return m ? std::nanf("") : float(sign * HUGE_VAL);
    return float(sign * (e == 0 ? std::ldexp(double(m), 1 - bias - mbits) : std::ldexp(double((1 << mbits) + m), e - bias - mbits)));
}

int float8_mbits(const std::string& dtype) { return dtype == "F8_E4M3" ? 3 : 2; }
int float8_bias(const std::string& dtype) { return dtype == "F8_E4M3" ? 7 : 15; }
bool is_float8(const std::string& dtype) { return dtype == "F8_E4M3" || dtype == "F8_E5M2"; }

// F32 tensor -> bytes of `dtype` (F32 / F16 / BF16 / F8_E4M3 / F8_E5M2, round to nearest even).
std::string encode(const Tensor& t, const std::string& dtype) {
    const Tensor c = t.contiguous();
    const float* p = c.data<float>();
    std::string out;
    if (dtype == "F32") {
        out.assign(reinterpret_cast<const char*>(p), size_t(c.numel()) * 4);
        return out;
    }
    if (is_float8(dtype)) {
        out.resize(size_t(c.numel()));
        for (int64_t i = 0; i < c.numel(); ++i)
            out[size_t(i)] = char(to_float8(p[i], float8_mbits(dtype), float8_bias(dtype)));
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
    if (is_float8(dtype)) {
        const int mb = float8_mbits(dtype), bias = float8_bias(dtype);
        return from_float8(to_float8(x, mb, bias), mb, bias);
    }
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

// The dtype a checkpoint tensor is stored in: `dtype`, except that fp8 checkpoints keep 1-D tensors (norms, biases)
// in F16 as the real ones keep them in higher precision, and here store the VAE as F8_E5M2 so one file mixes both.
std::string stored_dtype(const std::string& dtype, const std::string& key, size_t dims) {
    if (!is_float8(dtype)) return dtype;
    if (dims < 2) return "F16";
    return key.rfind("first_stage_model.", 0) == 0 ? "F8_E5M2" : dtype;
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
            const std::string d = stored_dtype(dtype, s.key, t.shape().size());
            by_key[s.key] = Spec{s.key, d, t.shape(), encode(t, d)};
        }
    }
    for (auto& [key, parts] : fused) {
        std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        Shape shape = parts[0].second.shape();
        shape[0] *= int64_t(parts.size());
        const std::string d = stored_dtype(dtype, key, shape.size());
        std::string bytes;
        for (const auto& p : parts) bytes += encode(p.second, d);
        by_key[key] = Spec{key, d, shape, bytes};
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

SDXL_TEST(test_single_file_refiner_bf16_and_fp8_round_trip) {
    const std::string root = reference_root();
    const std::vector<std::pair<bool, std::string>> runs = {{true, "F32"}, {false, "BF16"}, {false, "F8_E4M3"}};
    for (const auto& [refiner, dtype] : runs) {
        const std::string folder = root + "/models/tiny-sdxl-" + (refiner ? "refiner" : "base");
        const std::string path = temp_path(std::string(refiner ? "refiner_" : "base_") + dtype + ".safetensors");
        write_file(path, serialize(checkpoint_from_folder(folder, refiner, dtype)));
        auto ck = SgmCheckpoint::open(path);
        CHECK(ck->kind() == (refiner ? models::SgmKind::SDXL_REFINER : models::SgmKind::SDXL_BASE));
        CHECK(ck->has("text_encoder") == !refiner);
        CHECK_MSG(ck->storage_dtype() == (is_float8(dtype) ? "mixed" : dtype), ck->storage_dtype());
        size_t n = 0, fp8 = 0;
        for (const Component& c : components(refiner)) {
            auto f = io::SafetensorsFile::open(folder + "/" + c.name + "/" + c.file);
            auto src = ck->source(c.map);
            for (const auto& info : f->header().tensors) {
                if (info.name == "text_model.embeddings.position_ids") continue;
                SgmSource s;
                CHECK(c.map.to_checkpoint(info.name, &s));
                const std::string stored = ck->file().find(s.key)->dtype_name;
                CHECK_MSG(stored == stored_dtype(dtype, s.key, ck->file().find(s.key)->shape.size()), s.key);
                fp8 += is_float8(stored);
                const Tensor want = f->get_f32(info.name);
                if (is_float8(stored)) {  // the real weights stay in fp8's range, so no test value hits NaN/Inf
                    const Tensor w = want.contiguous();
                    for (int64_t i = 0; i < w.numel(); ++i) CHECK(std::fabs(w.data<float>()[i]) < 448.0f);
                }
                CHECK_MSG(equal_rounded(src->load(info.name), want, stored), dtype << " " << info.name);
                ++n;
            }
        }
        CHECK_MSG(n > 500, n);
        CHECK_MSG(is_float8(dtype) == (fp8 > 300), fp8 << " fp8 tensors");
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

// The test's fp8 encoder against the definitions: every finite code round-trips, halfway values go to the even code,
// and torch's overflow rules (e4m3fn: above 464 -> NaN, no saturation; e5m2: -> Inf).
SDXL_TEST(test_single_file_float8_test_encoder) {
    int bad = 0;
    for (const std::string dtype : {"F8_E4M3", "F8_E5M2"}) {
        const int mb = float8_mbits(dtype), bias = float8_bias(dtype);
        for (int c = 0; c < 256; ++c) {
            const float v = from_float8(uint8_t(c), mb, bias);
            if (std::isfinite(v) && to_float8(v, mb, bias) != uint8_t(c) && !(v == 0 && (c & 0x7f) == 0)) ++bad;
            // The value halfway to the next code up rounds to whichever of the two is even.
            const float next = from_float8(uint8_t(c + 1), mb, bias);
            if ((c & 0x7f) < 0x7e && std::isfinite(next) && std::isfinite(v) && v >= 0) {
                const float mid = float((double(v) + double(next)) / 2);
                if (to_float8(mid, mb, bias) != uint8_t((c & 1) ? c + 1 : c)) ++bad;
            }
        }
        CHECK_MSG(bad == 0, dtype << ": " << bad << " codes");
    }
    CHECK(to_float8(448.0f, 3, 7) == 0x7e && to_float8(464.0f, 3, 7) == 0x7e && to_float8(465.0f, 3, 7) == 0x7f);
    CHECK(to_float8(-1e9f, 3, 7) == 0xff && to_float8(1e9f, 2, 15) == 0x7c && to_float8(57344.0f, 2, 15) == 0x7b);
}

namespace {

// The reference checkpoint's first_stage_model.* tensors as a file of their own (an LDM / A1111 VAE download),
// `prefix` put in front of each key; `linear_attention` stores the attention's 1x1 convs as [C, C] linears.
std::vector<Spec> ldm_vae_from_checkpoint(const io::SafetensorsFile& ck, const std::string& prefix,
                                          bool linear_attention) {
    std::vector<Spec> out;
    const std::string p = "first_stage_model.";
    for (const auto& info : ck.header().tensors) {
        if (info.name.compare(0, p.size(), p) != 0) continue;
        const Tensor t = ck.get(info.name);
        Shape shape = info.shape;
        if (linear_attention && info.name.find(".attn_1.") != std::string::npos && shape.size() == 4) shape.resize(2);
        out.push_back(Spec{prefix + info.name.substr(p.size()), info.dtype_name, shape,
                           std::string(static_cast<const char*>(t.raw_data()), size_t(info.end - info.begin))});
    }
    return out;
}

void sort_specs(std::vector<Spec>& s) {
    std::sort(s.begin(), s.end(), [](const Spec& a, const Spec& b) { return a.name < b.name; });
}

}  // namespace

// Standalone VAE files: the LDM layout (bare, under first_stage_model., with training leftovers, attention as
// linears) gives every weight of the folder's VAE exactly (fp32; the folder rounded to fp16 for the fp16 file), the
// diffusers-named file still loads as such, and files of neither or both layouts, with a missing or a mis-shaped key,
// are BAD_MODEL_FILE naming the file and the key.
SDXL_TEST(test_single_file_ldm_vae_files) {
    const std::string root = reference_root();
    const std::string folder_vae = root + "/models/tiny-sdxl-base/vae/diffusion_pytorch_model.safetensors";
    auto folder = io::SafetensorsFile::open(folder_vae);
    const api::VaeConfig cfg = tiny_vae();
    const std::string path = temp_path("vae.safetensors");
    struct Variant {
        std::string checkpoint, dtype, prefix;
        bool linear_attention, extras;
    };
    const std::vector<Variant> variants = {{"tiny-sdxl-base.safetensors", "F32", "", false, true},
                                           {"tiny-sdxl-base.fp16.safetensors", "F16", "", true, false},
                                           {"tiny-sdxl-base.safetensors", "F32", "first_stage_model.", false, false}};
    for (const Variant& v : variants) {
        auto ck = io::SafetensorsFile::open(root + "/models/single-file/" + v.checkpoint);
        std::vector<Spec> specs = ldm_vae_from_checkpoint(*ck, v.prefix, v.linear_attention);
        if (v.extras) {  // what LDM training leaves in a VAE checkpoint besides the weights
            specs.push_back(Spec{"model_ema.decay", "F32", {}, std::string(4, '\0')});
            specs.push_back(Spec{"loss.logvar", "F32", {}, std::string(4, '\0')});
            specs.push_back(Spec{"loss.discriminator.main.0.weight", "F32", {2, 3, 1, 1}, std::string(24, '\0')});
        }
        sort_specs(specs);
        write_file(path, serialize(specs));
        std::vector<std::string> keys;
        for (const auto& sp : specs) keys.push_back(sp.name);
        const models::VaeFileKind kind = models::classify_vae_file(keys, path);
        CHECK(kind.layout == models::VaeFileLayout::LDM && kind.prefix == v.prefix);
        auto src = models::vae_file_source(cfg, path);
        size_t n = 0;
        for (const auto& info : folder->header().tensors) {
            CHECK_MSG(src->contains(info.name) && src->shape(info.name) == info.shape, info.name);
            CHECK_MSG(equal_rounded(src->load(info.name), folder->get_f32(info.name), v.dtype),
                      v.checkpoint << " " << v.prefix << ": " << info.name);
            ++n;
        }
        CHECK_MSG(n == 244 && src->keys().size() == 244, n << " tensors, the file feeds " << src->keys().size());
        api::VaeModel::load(cfg, {path});  // builds, nothing left unused
    }
    // The folder's own diffusers-named file is still read as diffusers.
    std::vector<std::string> folder_keys;
    for (const auto& info : folder->header().tensors) folder_keys.push_back(info.name);
    CHECK(models::classify_vae_file(folder_keys, "x").layout == models::VaeFileLayout::DIFFUSERS);
    api::VaeModel::load(cfg, {folder_vae});

    // Refusals.
    auto ck = io::SafetensorsFile::open(root + "/models/single-file/tiny-sdxl-base.safetensors");
    const std::vector<Spec> good = ldm_vae_from_checkpoint(*ck, "", false);
    auto refused = [&](std::vector<Spec> specs, const std::string& part) {
        sort_specs(specs);
        write_file(path, serialize(specs));
        sdxl_test::expect_error([&] { api::VaeModel::load(cfg, {path}); }, ErrorCode::BAD_MODEL_FILE, part);
        sdxl_test::expect_error([&] { api::VaeModel::load(cfg, {path}); }, ErrorCode::BAD_MODEL_FILE, path);
    };
    std::vector<Spec> missing = good;
    missing.erase(std::find_if(missing.begin(), missing.end(),
                               [](const Spec& sp) { return sp.name == "decoder.up.3.block.0.conv1.weight"; }));
    refused(missing, "missing tensor 'decoder.up_blocks.0.resnets.0.conv1.weight' [32, 32, 3, 3] (file key "
                     "'decoder.up.3.block.0.conv1.weight')");
    std::vector<Spec> shaped = good;
    for (Spec& sp : shaped)
        if (sp.name == "encoder.mid.attn_1.q.weight") sp.shape = {32, 1, 32, 1};
    refused(shaped, "'encoder.mid_block.attentions.0.to_q.weight' (file key 'encoder.mid.attn_1.q.weight (1x1 conv as "
                    "linear)') has shape [32, 1, 32, 1]");
    std::vector<Spec> extra = good;
    extra.push_back(Spec{"decoder.up.3.block.0.extra", "F32", {1}, std::string(4, '\0')});
    refused(extra, "decoder.up.3.block.0.extra");
    std::vector<Spec> mixed = good;
    mixed.push_back(Spec{"encoder.down_blocks.0.resnets.0.conv1.weight", "F32", {1}, std::string(4, '\0')});
    refused(mixed, "mixes diffusers key names");
    std::vector<Spec> both = good;
    both.push_back(Spec{"first_stage_model.encoder.down.0.block.0.conv1.weight", "F32", {1}, std::string(4, '\0')});
    refused(both, "with and without the first_stage_model. prefix");
    std::vector<Spec> ints = good;
    for (Spec& sp : ints)
        if (sp.name == "quant_conv.bias") sp.dtype = "I32";
    refused(ints, "is I32, weights must be");
    refused({Spec{"down_blocks.0.resnets.0.conv1.weight", "F32", {1}, std::string(4, '\0')}}, "not a VAE weights file");
    std::remove(path.c_str());
}

// Mutations (mutated_files.h: missing, renamed and foreign keys; wrong shapes; wrong dtypes of the same size (a valid
// file, refused at load) and of another size (an invalid header); extra rows; truncated data; flipped header bytes;
// broken header JSON; data offsets out of range or overlapping; zero and huge dims) of a single-file checkpoint (the
// fp16 reference file, and an fp8 one made from the fp32 file: F8_E4M3 weights, F8_E5M2 VAE, F16 norms) and of an
// LDM-layout VAE file. Open + build every component (the VAE file: VaeModel::load) gives sdxl::Error with
// BAD_MODEL_FILE naming the file, or loads; never a crash. The loaders run on the CPU alike in both native runners,
// so the emulator's runner repeats a tenth of them.
SDXL_TEST(test_single_file_mutated_checkpoints_never_crash) {
    namespace mu = sdxl_test::mutants;
    const std::string root = reference_root();
    auto fp16 = io::SafetensorsFile::open(root + "/models/single-file/tiny-sdxl-base.fp16.safetensors");
    auto fp32 = io::SafetensorsFile::open(root + "/models/single-file/tiny-sdxl-base.safetensors");
    std::vector<mu::RawTensor> sf16, sf8, vae;
    for (const auto& info : fp16->header().tensors) {
        const Tensor t = fp16->get(info.name);
        sf16.push_back({info.name, info.dtype_name, info.shape,
                        std::string(static_cast<const char*>(t.raw_data()), size_t(info.end - info.begin))});
    }
    for (const auto& info : fp32->header().tensors) {
        const std::string d = stored_dtype("F8_E4M3", info.name, info.shape.size());
        sf8.push_back({info.name, d, info.shape, encode(fp32->get_f32(info.name), d)});
    }
    for (const Spec& sp : ldm_vae_from_checkpoint(*fp16, "", false)) vae.push_back({sp.name, sp.dtype, sp.shape, sp.bytes});
    vae.push_back({"model_ema.decay", "F32", {}, std::string(4, '\0')});
    const std::vector<mu::Base> bases = {mu::make_base("single-file fp16", sf16), mu::make_base("single-file fp8", sf8),
                                         mu::make_base("LDM VAE file", vae)};
    const std::vector<std::string> foreign = {
        "cond_stage_model.transformer.", "model.diffusion_model.joint_blocks.0.", "double_blocks.0.", "lora_unet_",
        "first_stage_model.encoder.down_blocks.", "loss.", "model_ema.", "conditioner.embedders.2.", "encoder.down.9."};
    const api::VaeConfig vae_cfg = tiny_vae();
    const std::string path = temp_path("fuzz.safetensors");
    auto load = [&](const mu::Base& b) {
        if (&b == &bases[2]) api::VaeModel::load(vae_cfg, {path});
        else load_all(path);
    };
    for (const mu::Base& b : bases) {  // unmutated, every base loads
        mu::write(path, mu::unmutated(b));
        load(b);
    }
#ifdef SDXL_CUDA_EMULATOR
    const int kMutants = 100;
#else
    const int kMutants = 1000;
#endif
    std::mt19937_64 rng(13);
    mu::Tally tally;
    for (int m = 0; m < kMutants; ++m) {
        // Half on the fp16 checkpoint, a quarter each on the fp8 checkpoint and the VAE file; every kind on each.
        const mu::Base& base = bases[m % 4 < 2 ? 0 : m % 4 == 2 ? 1 : 2];
        const mu::Mutant mutant = mu::mutate(base, (m / 4 + m) % mu::kKindCount, rng, foreign);
        mu::write(path, mutant);
        try {
            load(base);
            tally.load(mutant.kind);
        } catch (const Error& e) {
            CHECK_MSG(e.message().find(path) != std::string::npos,
                      mutant.note << ": the message does not name the file: " << e.message());
            CHECK_MSG(e.code() == ErrorCode::BAD_MODEL_FILE, base.what << ", " << mutant.note << ": " << e.what());
            tally.refuse(mutant.kind, e.code());
        }
    }
    std::remove(path.c_str());
    tally.print("mutated single-file checkpoints and VAE files");
    CHECK_MSG(tally.refused + tally.loaded == kMutants, tally.refused << " errors, " << tally.loaded << " loaded");
    CHECK_MSG(tally.refused > kMutants * 8 / 10, "only " << tally.refused << " of " << kMutants << " were refused");
}
