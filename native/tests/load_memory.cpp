// Host memory of loading the real-size SDXL base from a single-file checkpoint vs a diffusers folder, and of fusing
// a LoRA into it (issue 13: a single file must cost no more than a folder; a fused LoRA no second copy of the
// weights). Not a CTest: the files are ~14 GB per copy in f32.
//
//   sdxl_load_memory write DIR [--dtype f32|f16]     writes, with the same pseudo-random values in both:
//       DIR/folder/{unet,vae,text_encoder,text_encoder_2}/...safetensors   (diffusers names)
//       DIR/sdxl-base.safetensors                                          (SGM / A1111 layout, by our inverse map)
//       DIR/lora.safetensors      a PEFT LoRA, rank 32, on every UNet attention q/k/v/out (kohya's usual target)
//   sdxl_load_memory load folder|file DIR [--lora]   loads all four components on the CPU (the compute dtype, f32)
//       in this fresh process and prints VmHWM / VmRSS / RssAnon / RssFile (from /proc/self/status) after each
//       component, then after fusing the LoRA at scale 0.8, and after unfusing it.
//
// RssAnon is what the process owns; RssFile are pages of the mapped weight files, shared with the page cache
// (reclaimable and shared between processes). f32 files load as views into the mapping (no copy), f16 files
// are widened to f32 once on the CPU (an anonymous copy of every weight, from a folder or a file alike).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "core/half.h"
#include "core/op_profile.h"
#include "io/safetensors.h"
#include "models/autoencoder_kl.h"
#include "models/clip_text.h"
#include "models/single_file.h"
#include "models/unet2d_condition.h"
#include "nn/weights.h"
#include "sdxl/sdxl.h"

using namespace sdxl;
using models::SgmKeyMap;
using models::SgmOp;
using models::SgmSource;

namespace {

struct Component {
    std::string name, file;                       // folder layout
    std::vector<std::pair<std::string, Shape>> keys;  // diffusers key -> shape, sorted
};

// The diffusers keys and shapes of each component, from its model built without values (a count-only profile
// gives tensors shapes and no memory).
std::vector<Component> components() {
    auto collect = [](auto&& build) {
        profile::start(true, Device::CPU);
        nn::WeightBuilder vb(nn::random_source(0, 1.0f));
        std::vector<std::pair<std::string, Shape>> out;
        {
            auto model = build(vb);
            for (const auto& k : vb.table()->keys()) out.push_back({k, vb.table()->find(k).shape()});
        }
        profile::stop();
        std::sort(out.begin(), out.end());
        return out;
    };
    std::vector<Component> cs;
    cs.push_back({"unet", "diffusion_pytorch_model.safetensors", collect([](const nn::WeightBuilder& vb) {
                      return std::make_shared<models::UNet2DConditionModel>(api::UNetConfig::sdxl_base(), vb);
                  })});
    cs.push_back({"vae", "diffusion_pytorch_model.safetensors", collect([](const nn::WeightBuilder& vb) {
                      return std::make_shared<models::AutoencoderKL>(api::VaeConfig::sdxl(), vb);
                  })});
    cs.push_back({"text_encoder", "model.safetensors", collect([](const nn::WeightBuilder& vb) {
                      return std::make_shared<models::ClipTextModel>(api::ClipTextConfig::sdxl_text_encoder(), vb);
                  })});
    cs.push_back({"text_encoder_2", "model.safetensors", collect([](const nn::WeightBuilder& vb) {
                      return std::make_shared<models::ClipTextModel>(api::ClipTextConfig::sdxl_text_encoder_2(), vb);
                  })});
    // The token and position embeddings are read with get_host (a host-side row lookup), which the weight table does not record.
    const api::ClipTextConfig clip[2] = {api::ClipTextConfig::sdxl_text_encoder(), api::ClipTextConfig::sdxl_text_encoder_2()};
    for (int e = 0; e < 2; ++e) {
        auto& keys = cs[2 + e].keys;
        keys.push_back({"text_model.embeddings.token_embedding.weight", {clip[e].vocab_size, clip[e].hidden_size}});
        keys.push_back({"text_model.embeddings.position_embedding.weight",
                        {clip[e].max_position_embeddings, clip[e].hidden_size}});
        std::sort(keys.begin(), keys.end());
    }
    return cs;
}

SgmKeyMap map_of(const std::string& component) {
    if (component == "unet") return SgmKeyMap::unet(api::UNetConfig::sdxl_base());
    if (component == "vae") return SgmKeyMap::vae(api::VaeConfig::sdxl());
    if (component == "text_encoder") return SgmKeyMap::clip_l();
    return SgmKeyMap::open_clip(api::ClipTextConfig::sdxl_text_encoder_2(), "conditioner.embedders.1.model.");
}

int64_t numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

std::string shape_json(const Shape& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
    return out + "]";
}

// A safetensors file written tensor by tensor (the header first, from the shapes), never all in memory.
struct OutTensor {
    std::string name;
    Shape shape;
    std::function<void(char* dst)> fill;  // writes numel * element bytes
};

void write_safetensors(const std::string& path, std::vector<OutTensor> tensors, const std::string& dtype) {
    std::sort(tensors.begin(), tensors.end(), [](const OutTensor& a, const OutTensor& b) { return a.name < b.name; });
    const size_t es = dtype == "F32" ? 4 : 2;
    std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        const uint64_t bytes = uint64_t(numel(t.shape)) * es;
        header += ",\"" + t.name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape_json(t.shape) +
                  ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
        offset += bytes;
    }
    header += "}";
    while (header.size() % 8) header += ' ';
    std::ofstream f(path, std::ios::binary);
    const uint64_t n = header.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(header.data(), std::streamsize(header.size()));
    std::vector<char> buf;
    for (const auto& t : tensors) {
        buf.resize(size_t(numel(t.shape)) * es);
        t.fill(buf.data());
        f.write(buf.data(), std::streamsize(buf.size()));
    }
    if (!f) throw std::runtime_error("write failed: " + path);
}

// Pseudo-random values by key (splitmix64 of key hash and index): uniform, small, never NaN; norm scales 1,
// biases 0.02-scaled like the rest. Cheap: ~7 G values to write per copy.
void fill_random(const std::string& key, int64_t n, const std::string& dtype, char* dst) {
    uint64_t seed = std::hash<std::string>{}(key) * 0x9E3779B97F4A7C15ull;
    const bool norm_scale = key.find("norm") != std::string::npos && key.find(".weight") != std::string::npos;
    for (int64_t i = 0; i < n; ++i) {
        uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float v = float(double(z >> 40) / double(1ull << 24) - 0.5) * 0.04f;
        if (norm_scale) v += 1.0f;
        if (dtype == "F32") std::memcpy(dst + 4 * i, &v, 4);
        else {
            const uint16_t h = f32_to_f16(v);
            std::memcpy(dst + 2 * i, &h, 2);
        }
    }
}

void write_all(const std::string& dir, const std::string& dtype) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Component> cs = components();
    ::mkdir(dir.c_str(), 0755);
    ::mkdir((dir + "/folder").c_str(), 0755);
    for (const auto& c : cs) {
        ::mkdir((dir + "/folder/" + c.name).c_str(), 0755);
        std::vector<OutTensor> ts;
        for (const auto& [k, s] : c.keys) {
            const int64_t n = numel(s);
            ts.push_back({k, s, [k = k, n, dtype](char* dst) { fill_random(k, n, dtype, dst); }});
        }
        write_safetensors(dir + "/folder/" + c.name + "/" + c.file, ts, dtype);
        std::printf("folder/%s: %zu tensors\n", c.name.c_str(), c.keys.size());
    }
    // The single file: every checkpoint tensor made from the folder's bytes by the inverse map (fused in_proj =
    // the q, k, v rows in order; text_projection transposed back; VAE attention linears as 1x1 convs).
    const size_t es = dtype == "F32" ? 4 : 2;
    std::vector<OutTensor> ts;
    std::vector<std::shared_ptr<io::SafetensorsFile>> files;
    for (const auto& c : cs) {
        auto f = io::SafetensorsFile::open(dir + "/folder/" + c.name + "/" + c.file);
        files.push_back(f);
        const SgmKeyMap map = map_of(c.name);
        std::map<std::string, std::vector<std::pair<int64_t, std::string>>> fused;  // in_proj: (row, diffusers key)
        for (const auto& [k, s] : c.keys) {
            SgmSource src;
            if (!map.to_checkpoint(k, &src)) throw std::runtime_error(c.name + ": no checkpoint key for " + k);
            if (src.op == SgmOp::ROWS) {
                fused[src.key].push_back({src.row_begin, k});
                continue;
            }
            Shape shape = s;
            if (src.op == SgmOp::TRANSPOSE) shape = {s[1], s[0]};
            if (src.op == SgmOp::CONV1X1_AS_LINEAR && s.size() == 2) shape = {s[0], s[1], 1, 1};
            const bool transpose = src.op == SgmOp::TRANSPOSE;
            ts.push_back({src.key, shape, [f, k = k, s = s, es, transpose](char* dst) {
                              const Tensor t = f->get(k);
                              const char* p = static_cast<const char*>(t.raw_data());
                              if (!transpose) {
                                  std::memcpy(dst, p, size_t(numel(s)) * es);
                                  return;
                              }
                              for (int64_t r = 0; r < s[0]; ++r)
                                  for (int64_t col = 0; col < s[1]; ++col)
                                      std::memcpy(dst + (col * s[0] + r) * es, p + (r * s[1] + col) * es, es);
                          }});
        }
        for (auto& [key, parts] : fused) {
            std::sort(parts.begin(), parts.end());
            Shape shape = f->find(parts[0].second)->shape;
            shape[0] *= int64_t(parts.size());
            std::vector<std::string> keys;
            for (const auto& p : parts) keys.push_back(p.second);
            ts.push_back({key, shape, [f, keys, es](char* dst) {
                              for (const auto& k : keys) {
                                  const Tensor t = f->get(k);
                                  const size_t bytes = size_t(t.numel()) * es;
                                  std::memcpy(dst, t.raw_data(), bytes);
                                  dst += bytes;
                              }
                          }});
        }
    }
    write_safetensors(dir + "/sdxl-base.safetensors", ts, dtype);
    std::printf("sdxl-base.safetensors: %zu tensors\n", ts.size());

    // PEFT LoRA, rank 32, fp16 (as LoRA files ship), on the UNet attention projections.
    std::vector<OutTensor> lora;
    const int64_t rank = 32;
    for (const auto& [k, s] : cs[0].keys) {
        const bool target = k.find(".attn") != std::string::npos && s.size() == 2 &&
                            (k.find("to_q.weight") != std::string::npos || k.find("to_k.weight") != std::string::npos ||
                             k.find("to_v.weight") != std::string::npos || k.find("to_out.0.weight") != std::string::npos);
        if (!target) continue;
        const std::string module = "unet." + k.substr(0, k.size() - std::strlen(".weight"));
        const Shape a{rank, s[1]}, b{s[0], rank};
        lora.push_back({module + ".lora_A.weight", a, [n = numel(a), m = module](char* d) { fill_random(m + "A", n, "F16", d); }});
        lora.push_back({module + ".lora_B.weight", b, [n = numel(b), m = module](char* d) { fill_random(m + "B", n, "F16", d); }});
    }
    write_safetensors(dir + "/lora.safetensors", lora, "F16");
    std::printf("lora.safetensors: %zu modules, rank %lld\n", lora.size() / 2, static_cast<long long>(rank));
    std::printf("written in %.0f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// VmHWM, VmRSS, RssAnon, RssFile in MiB.
void report(const std::string& when) {
    std::ifstream f("/proc/self/status");
    std::string line;
    std::map<std::string, double> v;
    while (std::getline(f, line)) {
        for (const char* k : {"VmHWM", "VmRSS", "RssAnon", "RssFile"}) {
            if (line.rfind(std::string(k) + ":", 0) == 0) v[k] = std::stod(line.substr(std::strlen(k) + 1)) / 1024.0;
        }
    }
    std::printf("%-34s VmHWM %8.0f MiB  VmRSS %8.0f  RssAnon %8.0f  RssFile %8.0f\n", when.c_str(), v["VmHWM"],
                v["VmRSS"], v["RssAnon"], v["RssFile"]);
    std::fflush(stdout);
}

int load_all(const std::string& how, const std::string& dir, bool with_lora) {
    using namespace api;
    const auto t0 = std::chrono::steady_clock::now();
    report("start");
    const std::string f = dir + "/folder/";
    const bool folder = how == "folder";
    std::optional<SingleFileCheckpoint> file;
    if (!folder) file.emplace(SingleFileCheckpoint::open(dir + "/sdxl-base.safetensors"));
    const SingleFileCheckpoint* ck = folder ? nullptr : &*file;
    UNetModel unet = folder ? UNetModel::load(UNetConfig::sdxl_base(), {f + "unet/diffusion_pytorch_model.safetensors"})
                            : UNetModel::load_single_file(UNetConfig::sdxl_base(), *ck);
    report("+ unet");
    VaeModel vae = folder ? VaeModel::load(VaeConfig::sdxl(), {f + "vae/diffusion_pytorch_model.safetensors"})
                          : VaeModel::load_single_file(VaeConfig::sdxl(), *ck);
    report("+ vae");
    ClipTextModel te = folder ? ClipTextModel::load(ClipTextConfig::sdxl_text_encoder(), {f + "text_encoder/model.safetensors"})
                              : ClipTextModel::load_single_file(ClipTextConfig::sdxl_text_encoder(), *ck, "text_encoder");
    report("+ text_encoder");
    ClipTextModel te2 = folder ? ClipTextModel::load(ClipTextConfig::sdxl_text_encoder_2(),
                                                     {f + "text_encoder_2/model.safetensors"})
                               : ClipTextModel::load_single_file(ClipTextConfig::sdxl_text_encoder_2(), *ck,
                                                                 "text_encoder_2");
    report("+ text_encoder_2 (all loaded)");
    if (!folder) {  // a folder's files are closed after each component; the checkpoint's mapping lives on its handle
        file.reset();
        ck = nullptr;
        report("checkpoint handle closed");
    }
    std::printf("loaded from the %s in %.1f s\n", folder ? "folder" : "single file",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (with_lora) {
        LoraList loras;
        loras.add(LoraFile::open(dir + "/lora.safetensors", false), 0.8);
        const auto t1 = std::chrono::steady_clock::now();
        unet.set_loras(loras);
        report("LoRA fused (scale 0.8)");
        std::printf("fused in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
        unet.set_loras(LoraList());
        report("LoRA unfused");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::vector<std::string> a(argv + 1, argv + argc);
        if (a.size() >= 2 && a[0] == "write") {
            std::string dtype = "F32";
            if (a.size() == 4 && a[2] == "--dtype") dtype = a[3] == "f16" ? "F16" : "F32";
            write_all(a[1], dtype);
            return 0;
        }
        if (a.size() >= 3 && a[0] == "load" && (a[1] == "folder" || a[1] == "file"))
            return load_all(a[1], a[2], a.size() == 4 && a[3] == "--lora");
        std::cerr << "usage: sdxl_load_memory write DIR [--dtype f32|f16] | load folder|file DIR [--lora]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "sdxl_load_memory: " << e.what() << "\n";
        return 1;
    }
}
