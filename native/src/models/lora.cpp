#include "models/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "core/device.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "models/single_file.h"

namespace sdxl::models {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// "a", "b", ... (at most 8, then "and N more") for messages.
std::string list_of(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size() && i < 8; ++i) out += (i ? ", '" : "'") + names[i] + "'";
    if (names.size() > 8) out += " and " + std::to_string(names.size() - 8) + " more";
    return out;
}

struct Parts {
    std::string down, up, alpha;  // tensor keys
};

// The kohya component prefixes and the diffusers component each names.
const std::vector<std::pair<std::string, std::string>> kKohyaPrefixes = {
    {"lora_unet_", "unet"}, {"lora_te1_", "text_encoder"}, {"lora_te2_", "text_encoder_2"}};
// PEFT: longest first, so "text_encoder_2." is not read as "text_encoder." + "_2...".
const std::vector<std::pair<std::string, std::string>> kPeftPrefixes = {
    {"text_encoder_2.", "text_encoder_2"}, {"text_encoder.", "text_encoder"}, {"unet.", "unet"}};

}  // namespace

std::shared_ptr<const LoraFile> LoraFile::open(const std::string& path, bool lenient) {
    auto file = io::SafetensorsFile::open(path);
    auto out = std::make_shared<LoraFile>();
    out->path_ = path;
    out->lenient_ = lenient;

    // module (component + name) -> its tensors, in the file's (sorted) order.
    std::vector<std::pair<std::string, std::string>> order;  // (component, module name as in the file)
    std::map<std::string, Parts> parts;
    std::map<std::string, std::string> component_of;
    std::vector<std::string> unknown, bad_dtype;
    int kohya = 0, peft = 0;
    for (const auto& t : file->header().tensors) {
        const std::string& k = t.name;
        std::string comp, module, part;
        bool is_kohya = false;
        for (const auto& [p, c] : kKohyaPrefixes) {
            if (!starts_with(k, p)) continue;
            for (const char* suf : {".lora_down.weight", ".lora_up.weight", ".alpha"}) {
                if (ends_with(k, suf) && k.size() > p.size() + std::strlen(suf)) {
                    comp = c;
                    module = k.substr(0, k.size() - std::strlen(suf));
                    part = suf;
                    is_kohya = true;
                }
            }
            break;
        }
        if (comp.empty()) {
            for (const auto& [p, c] : kPeftPrefixes) {
                if (!starts_with(k, p)) continue;
                for (const char* suf : {".lora_A.weight", ".lora_B.weight"}) {
                    if (ends_with(k, suf) && k.size() > p.size() + std::strlen(suf)) {
                        comp = c;
                        module = k.substr(0, k.size() - std::strlen(suf));
                        part = suf;
                    }
                }
                break;
            }
        }
        if (comp.empty()) {
            unknown.push_back(k);
            continue;
        }
        if (!t.supported || t.dtype == DType::I64) {
            bad_dtype.push_back(k + " (" + t.dtype_name + ")");
            continue;
        }
        (is_kohya ? kohya : peft)++;
        auto [it, fresh] = parts.emplace(module, Parts{});
        if (fresh) {
            order.emplace_back(comp, module);
            component_of[module] = comp;
        }
        Parts& pr = it->second;
        if (part == ".lora_down.weight" || part == ".lora_A.weight") pr.down = k;
        else if (part == ".alpha") pr.alpha = k;
        else pr.up = k;
    }
    if (!bad_dtype.empty())
        fail(ErrorCode::BAD_MODEL_FILE, path, ": LoRA tensors must be F32, F16 or BF16: ", list_of(bad_dtype));
    if (kohya && peft)
        fail(ErrorCode::BAD_MODEL_FILE, path, ": mixes kohya (lora_unet_/lora_te*_ ... .lora_down/.lora_up) and "
             "diffusers/PEFT (unet./text_encoder* ... .lora_A/.lora_B) keys");
    if (!unknown.empty()) {
        if (!lenient)
            fail(ErrorCode::BAD_MODEL_FILE, path, ": ", unknown.size(), " key(s) that are not LoRA tensors of a "
                 "known format (kohya lora_unet_/lora_te1_/lora_te2_ .lora_down.weight/.lora_up.weight/.alpha, or "
                 "diffusers/PEFT unet./text_encoder./text_encoder_2. .lora_A.weight/.lora_B.weight): ",
                 list_of(unknown), " (load leniently to skip them)");
        out->ignored_ = unknown;
    }
    if (parts.empty()) fail(ErrorCode::BAD_MODEL_FILE, path, ": no LoRA tensors in the file");
    out->format_ = kohya ? "kohya" : "peft";

    // PEFT in diffusers 0.31 has no alpha: each component's lora_alpha is the rank of its first lora_B key in
    // state-dict (= file) order, so a module's scale is first_rank / own_rank.
    std::map<std::string, int64_t> first_rank;
    std::vector<std::string> errors;
    for (const auto& [comp, module] : order) {
        const Parts& pr = parts[module];
        const char* dn = kohya ? "lora_down" : "lora_A";
        const char* un = kohya ? "lora_up" : "lora_B";
        if (pr.down.empty() || pr.up.empty()) {
            errors.push_back(module + " has " + (pr.down.empty() ? std::string("no ") + dn : std::string(dn)) +
                             (pr.up.empty() ? std::string(" but no ") + un : std::string(" and ") + un));
            continue;
        }
        const Shape& ds = file->find(pr.down)->shape;
        const Shape& us = file->find(pr.up)->shape;
        bool ok = (ds.size() == 2 || ds.size() == 4) && (us.size() == 2 || us.size() == 4) && ds[0] > 0 &&
                  us[0] > 0 && us[1] == ds[0] && (us.size() == 2 || (us[2] == 1 && us[3] == 1));
        for (int64_t d : ds) ok = ok && d > 0;
        if (!ok) {
            errors.push_back(module + ": " + dn + " " + shape_str(ds) + " and " + un + " " + shape_str(us) +
                             " are not a rank-r pair (down [r, in] or [r, in, kh, kw], up [out, r] or [out, r, 1, 1])");
            continue;
        }
        LoraModule m;
        m.component = comp;
        m.name = module;
        m.rank = ds[0];
        m.down = file->get_f32(pr.down);
        m.up = file->get_f32(pr.up);
        if (kohya) {
            const std::string prefix = comp == "unet" ? "lora_unet_" : comp == "text_encoder" ? "lora_te1_" : "lora_te2_";
            m.kohya = module.substr(prefix.size());
            m.alpha = double(m.rank);  // kohya's default: alpha = rank (scale 1)
            if (!pr.alpha.empty()) {
                const Tensor a = file->get_f32(pr.alpha);
                if (a.numel() != 1) {
                    errors.push_back(pr.alpha + " has shape " + shape_str(a.shape()) + ", an alpha is one number");
                    continue;
                }
                m.alpha = double(a.data<float>()[0]);
                if (!std::isfinite(m.alpha)) {
                    errors.push_back(pr.alpha + " is not finite");
                    continue;
                }
            }
        } else {
            m.path = module.substr(comp.size() + 1);
            auto fr = first_rank.emplace(comp, m.rank).first;
            m.alpha = double(fr->second);
        }
        out->modules_.push_back(std::move(m));
    }
    if (!errors.empty())
        fail(ErrorCode::BAD_MODEL_FILE, path, ": ", errors.size(), " bad LoRA module(s): ", list_of(errors));
    return out;
}

namespace {

// kohya's name of every weight of a component ("_"-joined module path) -> the diffusers module path. For the UNet
// also the SGM numbering, derived from the config through the single-file key map (one map for both uses).
std::map<std::string, std::string> kohya_names(const nn::WeightTable& table, const std::string& component,
                                               const api::UNetConfig* unet_config) {
    std::map<std::string, std::string> out;
    std::map<std::string, int> seen;
    auto underscore = [](std::string s) {
        std::replace(s.begin(), s.end(), '.', '_');
        return s;
    };
    auto add = [&](const std::string& kohya, const std::string& module) {
        if (++seen[kohya] > 1 && out[kohya] != module) out[kohya] = "";  // ambiguous: matches nothing
        else out[kohya] = module;
    };
    std::unique_ptr<SgmKeyMap> sgm;
    if (component == "unet" && unet_config) sgm = std::make_unique<SgmKeyMap>(SgmKeyMap::unet(*unet_config, ""));
    for (const auto& key : table.keys()) {
        if (!ends_with(key, ".weight")) continue;
        const std::string module = key.substr(0, key.size() - 7);
        add(underscore(module), module);
        SgmSource src;
        if (sgm && sgm->to_checkpoint(key, &src) && ends_with(src.key, ".weight"))
            add(underscore(src.key.substr(0, src.key.size() - 7)), module);
    }
    return out;
}

struct Target {
    std::string key;  // "<module>.weight"
    Tensor weight;    // the model's tensor (any device/dtype)
    const LoraModule* module;
    double scale;     // s * alpha / r
};

// up [out, r(,1,1)] @ down [r, in(,kh,kw)] fits weight [out, in(, kh, kw)]?
bool fits(const LoraModule& m, const Shape& w) {
    const Shape& d = m.down.shape();
    const Shape& u = m.up.shape();
    if (w.size() != 2 && w.size() != 4) return false;
    if (u[0] != w[0]) return false;
    if (w.size() == 2) return d.size() == 2 ? d[1] == w[1] : (d[1] == w[1] && d[2] == 1 && d[3] == 1);
    if (d.size() == 4) return d[1] == w[1] && d[2] == w[2] && d[3] == w[3];
    return w[2] == 1 && w[3] == 1 && d[1] == w[1];  // a 1x1 conv with a 2-D down
}

// Writes `values` (CPU, contiguous, the weight's shape; any float dtype) into the model's weight in its dtype and device.
void write_weight(const Tensor& weight, const Tensor& values) {
    SDXL_CHECK(weight.is_contiguous(), "LoRA: weight ", weight.describe(), " is not contiguous");
    const Tensor typed = values.to(weight.dtype());
    const size_t nbytes = size_t(weight.numel()) * dtype_size(weight.dtype());
    if (weight.device() == Device::CPU) {
        weight.storage()->prepare_write(size_t(weight.offset()) * dtype_size(weight.dtype()), nbytes);
        std::memcpy(weight.raw_data(), typed.raw_data(), nbytes);
    } else {
        device::copy_host_to_device(weight.raw_data(), typed.raw_data(), nbytes);
    }
}

}  // namespace

std::vector<std::string> fuse_loras(nn::WeightTable& table, const std::string& component,
                                    const api::UNetConfig* unet_config, const LoraStack& loras) {
    std::lock_guard<std::mutex> guard(table.overlay_mutex);
    std::map<std::string, std::string> kohya;
    bool kohya_built = false;
    std::vector<Target> targets;
    std::vector<std::string> unmatched, skipped;
    for (const auto& [file, s] : loras) {
        SDXL_CHECK(file != nullptr, "LoRA: null file");
        if (!std::isfinite(s)) fail(ErrorCode::INVALID_ARGUMENT, "LoRA scale must be finite, got ", s);
        for (const auto& m : file->modules()) {
            if (m.component != component) continue;
            std::string module = m.path;
            if (!m.kohya.empty()) {
                if (!kohya_built) kohya = kohya_names(table, component, unet_config), kohya_built = true;
                auto it = kohya.find(m.kohya);
                module = it == kohya.end() ? "" : it->second;
            }
            Tensor w = module.empty() ? Tensor() : table.find(module + ".weight");
            std::string why;
            if (!w.defined()) why = "no such module in the " + component;
            else if (!fits(m, w.shape()))
                why = "down " + shape_str(m.down.shape()) + " / up " + shape_str(m.up.shape()) + " do not fit the weight " +
                      shape_str(w.shape());
            if (!why.empty()) {
                (file->lenient() ? skipped : unmatched).push_back(file->path() + ": " + m.name + " (" + why + ")");
                continue;
            }
            targets.push_back(Target{module + ".weight", w, &m, s * m.alpha / double(m.rank)});
        }
    }
    if (!unmatched.empty())
        fail(ErrorCode::BAD_MODEL_FILE, unmatched.size(), " LoRA module(s) match no weight of the ", component, ": ",
             list_of(unmatched));

    // Every key changed now or before: recomputed from its original, or given its original back.
    std::map<std::string, std::vector<const Target*>> by_key;
    for (const auto& t : targets) by_key[t.key].push_back(&t);
    for (const auto& kv : table.originals) by_key[kv.first];
    for (const auto& [key, list] : by_key) {
        Tensor w = list.empty() ? table.find(key) : list.front()->weight;
        auto orig = table.originals.find(key);
        if (!w.defined()) {  // the model dropped it (cannot happen while the model lives); forget the copy
            if (orig != table.originals.end()) table.originals.erase(orig);
            continue;
        }
        if (list.empty()) {  // no LoRA touches it any more: the exact original bytes back
            write_weight(w, orig->second);  // same dtype: a plain byte copy
            table.originals.erase(orig);
            continue;
        }
        if (orig == table.originals.end())
            orig = table.originals.emplace(key, w.to(Device::CPU).clone()).first;  // exact, its own dtype
        Tensor acc = orig->second.to(DType::F32).clone();  // [out, K]
        float* W = acc.data<float>();
        const int64_t out = w.shape()[0], K = w.numel() / out;
        for (const Target* t : list) {
            const int64_t r = t->module->rank;
            const Tensor up = t->module->up.contiguous(), down = t->module->down.contiguous();
            const float* U = up.data<float>();    // [out, r]
            const float* D = down.data<float>();  // [r, K]
            const float sc = float(t->scale);
            // W += (up @ down) * scale: the product in fp32, then scaled, as PEFT's get_delta_weight.
            parallel_for(out, 16, [&](int64_t b, int64_t e) {
                for (int64_t o = b; o < e; ++o) {
                    float* row = W + o * K;
                    for (int64_t j = 0; j < K; ++j) {
                        float dot = 0.0f;
                        for (int64_t k = 0; k < r; ++k) dot += U[o * r + k] * D[k * K + j];
                        row[j] += dot * sc;
                    }
                }
            });
        }
        write_weight(w, acc);
    }
    return skipped;
}

}  // namespace sdxl::models
