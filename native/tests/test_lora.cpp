// LoRA overlays on a small random UNet (models/lora.h): unfused (run-time adapters) against fused, with kohya LoCon,
// PEFT and LyCORIS LoHa / LoKr modules on linears, 1x1 and 3x3 convs, self-attention q/k/v and cross-attention k/v;
// the base weights untouched by unfused LoRAs; the cross-attention cache and CUDA graphs not reused across a change.
// The CUDA parts run where a device is available (the emulator runner). The numbers against diffusers are checked by
// the Java tests (LoraReferenceTest, EmulatedCudaLoraTest).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "core/device.h"
#include "core/tensor.h"
#include "models/lora.h"
#include "models/unet2d_condition.h"
#include "models/unet_graph.h"
#include "nn/blocks.h"
#include "nn/weights.h"
#include "test_tensors.h"
#include "tiny_models.h"

using namespace sdxl;
using sdxl_test::rnd;

namespace {


struct Step {
    Tensor sample, timestep, context, text_embeds, time_ids;
};

Step step(uint64_t seed, DType dt = DType::F32, Device dev = Device::CPU) {
    Step s;
    s.sample = rnd({2, 4, 8, 8}, seed).to(dt).to(dev);
    s.timestep = Tensor::empty({}, DType::I64);
    s.timestep.data<int64_t>()[0] = 500;
    s.context = rnd({2, 7, 12}, seed + 1).to(dt).to(dev);
    s.text_embeds = rnd({2, 6}, seed + 2).to(dt).to(dev);
    s.time_ids = rnd({2, 5}, seed + 3, 0.0f, 1024.0f).to(dev);
    return s;
}

Tensor run(const models::UNet2DConditionModel& u, const Step& s, nn::CrossAttentionCache* cache = nullptr) {
    return u.forward(s.sample, s.timestep, s.context, s.text_embeds, s.time_ids, cache).to(Device::CPU).to(DType::F32);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    const Tensor x = a.to(Device::CPU).to(DType::F32).contiguous(), y = b.to(Device::CPU).to(DType::F32).contiguous();
    if (x.shape() != y.shape()) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < x.numel(); ++i)
        m = std::fmax(m, std::fabs(double(x.data<float>()[i]) - double(y.data<float>()[i])));
    return m;
}

bool same_bits(const Tensor& x, const Tensor& y) {
    const Tensor a = x.to(Device::CPU).contiguous(), b = y.to(Device::CPU).contiguous();
    return a.shape() == b.shape() && a.dtype() == b.dtype() &&
           std::memcmp(a.raw_data(), b.raw_data(), size_t(a.numel()) * dtype_size(a.dtype())) == 0;
}

// ---- LoRA files written here (F32 safetensors)

std::string write_safetensors(const std::string& name, const std::vector<std::pair<std::string, Tensor>>& tensors) {
    std::string h = "{", data;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const Tensor t = tensors[i].second.contiguous();
        h += (i ? "," : "") + std::string("\"") + tensors[i].first + "\":{\"dtype\":\"F32\",\"shape\":[";
        for (size_t d = 0; d < t.shape().size(); ++d) h += (d ? "," : "") + std::to_string(t.shape()[d]);
        h += "],\"data_offsets\":[" + std::to_string(data.size()) + ",";
        data.append(static_cast<const char*>(t.raw_data()), size_t(t.numel()) * 4);
        h += std::to_string(data.size()) + "]}";
    }
    h += "}";
    while (h.size() % 8) h += ' ';
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((uint64_t(h.size()) >> (8 * i)) & 0xff);
    bytes += h + data;
    const char* dir = std::getenv("TMPDIR");
    const std::string path = std::string(dir ? dir : "/tmp") + "/sdxl_lora_" + std::to_string(::getpid()) + "_" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
    return path;
}

Tensor scalar(float v) {
    Tensor t = Tensor::empty({}, DType::F32);
    t.data<float>()[0] = v;
    return t;
}

const char* kAttn = "down_blocks.1.attentions.0.transformer_blocks.0.";

// PEFT, rank 2: self-attention q/k/v (fused into one GEMM on CUDA), cross-attention k/v (cached across steps), the
// GEGLU projection, proj_in, a resnet's time_emb_proj, a 3x3 conv (LoCon) and a 1x1 conv_shortcut (2-D lora_A).
std::string peft_file() {
    std::vector<std::pair<std::string, Tensor>> t;
    uint64_t seed = 100;
    auto add = [&](const std::string& module, const Shape& a, const Shape& b) {
        t.emplace_back("unet." + module + ".lora_A.weight", rnd(a, seed++, -0.6f, 0.6f));
        t.emplace_back("unet." + module + ".lora_B.weight", rnd(b, seed++, -0.6f, 0.6f));
    };
    const std::string at = kAttn;
    for (const char* p : {"attn1.to_q", "attn1.to_k", "attn1.to_v"}) add(at + p, {2, 16}, {16, 2});
    for (const char* p : {"attn2.to_k", "attn2.to_v"}) add(at + p, {2, 12}, {16, 2});
    add(at + "ff.net.0.proj", {2, 16}, {128, 2});
    add("down_blocks.1.attentions.0.proj_in", {2, 16}, {16, 2});
    add("mid_block.attentions.0.transformer_blocks.0.attn1.to_v", {2, 16}, {16, 2});
    add("down_blocks.0.resnets.0.time_emb_proj", {2, 32}, {8, 2});
    add("down_blocks.0.resnets.0.conv1", {2, 8, 3, 3}, {8, 2, 1, 1});
    add("down_blocks.1.resnets.0.conv_shortcut", {2, 8}, {16, 2});
    return write_safetensors("peft.safetensors", t);
}

// kohya names, LyCORIS kinds: LoHa on a linear, Tucker LoHa on a 3x3 conv, LoKr (w1 full, w2 split) on a 3x3 conv,
// LoKr with both factors full on a linear, LoKr (w1 split, Tucker w2) on a 3x3 conv.
std::vector<std::pair<std::string, Tensor>> lycoris_tensors() {
    std::vector<std::pair<std::string, Tensor>> t;
    uint64_t seed = 300;
    auto add = [&](const std::string& module, const std::string& part, const Shape& s) {
        std::string k = "lora_unet_" + module;
        for (char& c : k)
            if (c == '.') c = '_';
        t.emplace_back(k + "." + part, part == "alpha" ? scalar(float(s[0])) : rnd(s, seed++, -0.6f, 0.6f));
    };
    const std::string loha = std::string(kAttn) + "attn1.to_out.0";
    add(loha, "hada_w1_a", {16, 2}), add(loha, "hada_w1_b", {2, 16}), add(loha, "hada_w2_a", {16, 2});
    add(loha, "hada_w2_b", {2, 16}), add(loha, "alpha", {1});
    const std::string tucker = "up_blocks.0.resnets.0.conv1";  // [16, 32, 3, 3]
    add(tucker, "hada_t1", {2, 2, 3, 3}), add(tucker, "hada_w1_a", {2, 16}), add(tucker, "hada_w1_b", {2, 32});
    add(tucker, "hada_t2", {2, 2, 3, 3}), add(tucker, "hada_w2_a", {2, 16}), add(tucker, "hada_w2_b", {2, 32});
    const std::string lokr = "down_blocks.0.resnets.0.conv2";  // [8, 8, 3, 3] = kron([2, 2], [4, 4 * 9])
    add(lokr, "lokr_w1", {2, 2}), add(lokr, "lokr_w2_a", {4, 2}), add(lokr, "lokr_w2_b", {2, 36}), add(lokr, "alpha", {4});
    const std::string full = "mid_block.attentions.0.transformer_blocks.0.attn2.to_q";  // [16, 16]
    add(full, "lokr_w1", {4, 4}), add(full, "lokr_w2", {4, 4}), add(full, "alpha", {3});
    const std::string lokr_t = "up_blocks.1.resnets.0.conv2";  // [16, 16, 3, 3]
    add(lokr_t, "lokr_w1_a", {4, 1}), add(lokr_t, "lokr_w1_b", {1, 4}), add(lokr_t, "lokr_t2", {1, 1, 3, 3});
    add(lokr_t, "lokr_w2_a", {1, 4}), add(lokr_t, "lokr_w2_b", {1, 4});
    return t;
}

std::string lycoris_file() { return write_safetensors("lycoris.safetensors", lycoris_tensors()); }

models::LoraStack stack(const std::vector<std::pair<std::string, double>>& files, bool fused) {
    models::LoraStack s;
    for (const auto& [path, scale] : files) s.push_back({models::LoraFile::open(path, false), scale, fused});
    return s;
}

// The weights the files touch, copied (host, their dtype).
std::vector<std::pair<std::string, Tensor>> touched(const models::UNet2DConditionModel& u) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const std::string& m :
         {std::string(kAttn) + "attn1.to_q", std::string(kAttn) + "attn2.to_k", std::string(kAttn) + "attn1.to_out.0",
          std::string("down_blocks.0.resnets.0.conv1"), std::string("down_blocks.0.resnets.0.conv2"),
          std::string("up_blocks.0.resnets.0.conv1")}) {
        const Tensor w = u.weight_table()->find(m + ".weight");
        CHECK_MSG(w.defined(), m);
        if (w.defined()) out.emplace_back(m, w.to(Device::CPU).clone());
    }
    return out;
}

bool untouched(const models::UNet2DConditionModel& u, const std::vector<std::pair<std::string, Tensor>>& before) {
    for (const auto& [m, w] : before)
        if (!same_bits(u.weight_table()->find(m + ".weight"), w)) return false;
    return true;
}

// Fused vs unfused (and mixed) on one placement; returns the unfused output of both files.
Tensor fused_vs_unfused(const models::UNet2DConditionModel& u, const Step& in, double tol, const char* where,
                        const std::string& peft, const std::string& lyco) {
    const std::vector<std::pair<std::string, double>> both = {{peft, 0.8}, {lyco, 0.6}};
    const auto before = touched(u);
    const Tensor base = run(u, in);

    CHECK(u.set_loras(stack(both, true)).empty());
    const Tensor fused = run(u, in);
    CHECK_MSG(!untouched(u, before), where << ": fusing changed no weight");
    CHECK(u.set_loras({}).empty());
    CHECK_MSG(untouched(u, before), where << ": unloading did not restore the weights");
    CHECK_MSG(same_bits(run(u, in), base), where << ": unloading did not restore the output");

    CHECK(u.set_loras(stack(both, false)).empty());
    const Tensor unfused = run(u, in);
    CHECK_MSG(untouched(u, before), where << ": an unfused LoRA changed a weight");
    const double d = max_abs_diff(unfused, fused), effect = max_abs_diff(fused, base);
    std::printf("lora %s: unfused vs fused %.3g (the LoRAs change the output by %.3g)\n", where, d, effect);
    CHECK_MSG(d <= tol, where << ": unfused vs fused " << d);
    CHECK_MSG(effect > 100 * tol, where << ": the LoRAs barely change the output: " << effect);

    // Mixed: the PEFT file fused, the LyCORIS one unfused.
    auto mixed = stack({{peft, 0.8}}, true);
    mixed.push_back({models::LoraFile::open(lyco, false), 0.6, false});
    CHECK(u.set_loras(mixed).empty());
    CHECK_MSG(max_abs_diff(run(u, in), fused) <= tol, where << ": mixed modes");

    CHECK(u.set_loras({}).empty());
    CHECK_MSG(untouched(u, before), where << ": weights after unloading");
    CHECK_MSG(same_bits(run(u, in), base), where << ": removing the adapters did not restore the output bit for bit");
    return unfused;
}

}  // namespace

SDXL_TEST(lora_unfused_matches_fused_cpu) {
    const models::UNet2DConditionModel u(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f)));
    const std::string peft = peft_file(), lyco = lycoris_file();
    fused_vs_unfused(u, step(31), 1e-4, "cpu f32", peft, lyco);
    std::remove(peft.c_str());
    std::remove(lyco.c_str());
}

// A generation keeps the cross-attention keys/values across steps: a LoRA change in between (fused or unfused,
// touching attn2.to_k / to_v) must not reuse those of the old weights.
SDXL_TEST(lora_change_invalidates_cross_attention_cache) {
    const models::UNet2DConditionModel u(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f)));
    const std::string peft = peft_file();
    const Step in = step(31);
    for (bool fused : {false, true}) {
        nn::CrossAttentionCache cache;
        const Tensor base = run(u, in, &cache);
        CHECK(cache.size() > 0);
        CHECK(u.set_loras(stack({{peft, 1.0}}, fused)).empty());
        const Tensor plain = run(u, in);
        CHECK_MSG(max_abs_diff(plain, base) > 1e-3, "the LoRA must change the output");
        CHECK_MSG(same_bits(run(u, in, &cache), plain), (fused ? "fused" : "unfused") << ": stale cached keys/values");
        CHECK(u.set_loras(stack({{peft, 0.25}}, fused)).empty());
        CHECK_MSG(same_bits(run(u, in, &cache), run(u, in)), "after a new scale");
        CHECK(u.set_loras({}).empty());
        CHECK_MSG(same_bits(run(u, in, &cache), base), "after unloading");
    }
    std::remove(peft.c_str());
}

SDXL_TEST(lora_unfused_on_cuda) {
    if (!device::cuda_available()) return;  // the emulator runner has a device
    const Step cpu_in = step(31);
    const models::UNet2DConditionModel cpu(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f)));
    const std::string peft = peft_file(), lyco = lycoris_file();
    CHECK(cpu.set_loras(stack({{peft, 0.8}, {lyco, 0.6}}, false)).empty());
    const Tensor cpu_out = run(cpu, cpu_in);

    // F32 on the device: self-attention q/k/v run as one GEMM there (adapters added in its epilogue).
    const models::UNet2DConditionModel f32(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f),
                                                                      nn::Placement{Device::CUDA, DType::F32}));
    const Tensor dev_out = fused_vs_unfused(f32, step(31, DType::F32, Device::CUDA), 1e-4, "cuda f32", peft, lyco);
    const double d = max_abs_diff(dev_out, cpu_out);
    std::printf("lora cuda f32 unfused vs cpu unfused: %.3g\n", d);
    CHECK_MSG(d <= 1e-3, "cuda vs cpu " << d);

    // F16 with CUDA graphs: a captured step must not keep the adapters of before a change (a new scale, unloading).
    const models::UNet2DConditionModel f16(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f),
                                                                      nn::Placement{Device::CUDA, DType::F16}));
    const Step in = step(31, DType::F16, Device::CUDA);
    models::UNetGraphRunner& graphs = f16.graph_runner();
    auto eager = [&] {
        f16.set_cuda_graphs(false);
        const Tensor y = f16.forward(in.sample, in.timestep, in.context, in.text_embeds, in.time_ids);
        f16.set_cuda_graphs(true);
        return y;
    };
    auto graphed = [&] {  // warm-up or capture + replay, then a replay
        f16.forward(in.sample, in.timestep, in.context, in.text_embeds, in.time_ids);
        return f16.forward(in.sample, in.timestep, in.context, in.text_embeds, in.time_ids);
    };
    f16.set_cuda_graphs(true);
    CHECK(f16.set_loras(stack({{peft, 1.0}, {lyco, 1.0}}, false)).empty());
    const Tensor ref1 = eager();
    CHECK_MSG(same_bits(graphed(), ref1), "graph replay with adapters");
    CHECK(graphs.stats().graphs == 1);
    CHECK(f16.set_loras(stack({{peft, 0.3}, {lyco, 0.3}}, false)).empty());
    CHECK_MSG(graphs.stats().graphs == 0, "the adapters changed: the captured step must be dropped");
    const Tensor ref2 = eager();
    CHECK(max_abs_diff(ref1, ref2) > 1e-2);
    CHECK_MSG(same_bits(graphed(), ref2), "a replay after a new scale must use the new adapters");
    CHECK(f16.set_loras(stack({{peft, 0.3}, {lyco, 0.3}}, true)).empty());  // fused: within f16 rounding of unfused
    const double df = max_abs_diff(graphed(), ref2);
    std::printf("lora cuda f16 fused vs unfused: %.3g\n", df);
    CHECK_MSG(df <= 2e-2, "f16 fused vs unfused " << df);
    CHECK(f16.set_loras({}).empty());
    std::remove(peft.c_str());
    std::remove(lyco.c_str());
}

// Files the parser refuses: named kinds it does not run (unless lenient), LoHa / LoKr factors that do not fit.
SDXL_TEST(lora_lycoris_refusals) {
    const Tensor a = rnd({16, 2}, 1), b = rnd({2, 16}, 2);
    const std::string m = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q";
    auto expect = [&](const std::vector<std::pair<std::string, Tensor>>& t, const std::string& part) {
        const std::string path = write_safetensors("bad.safetensors", t);
        sdxl_test::expect_error([&] { models::LoraFile::open(path, false); }, ErrorCode::BAD_MODEL_FILE, part);
        std::remove(path.c_str());
    };
    expect({{m + ".oft_blocks", rnd({4, 4, 4}, 3)}, {m + ".alpha", scalar(1)}}, "OFT/BOFT (oft_blocks)");
    expect({{m + ".lora_down.weight", b}, {m + ".lora_up.weight", a}, {m + ".dora_scale", rnd({16, 1}, 4)}},
           "DoRA (dora_scale)");
    expect({{m + ".hada_w1_a", a}, {m + ".hada_w1_b", b}, {m + ".hada_w2_a", a}}, "has no hada_w2_b");
    expect({{m + ".hada_w1_a", a}, {m + ".hada_w1_b", b}, {m + ".hada_w2_a", a}, {m + ".hada_w2_b", rnd({3, 16}, 5)}},
           "do not fit together");
    expect({{m + ".lokr_w1", rnd({4, 4}, 6)}, {m + ".lokr_w2_a", rnd({4, 2}, 7)}}, "nor both lokr_w2_a and lokr_w2_b");
    expect({{m + ".lokr_w1", rnd({4, 4}, 6)}, {m + ".lora_up.weight", a}, {m + ".lokr_w2", rnd({4, 4}, 6)}},
           "mixes LoRA and LoKr");
    // Lenient: the unsupported kind's keys are skipped, the rest loads.
    const std::string path = write_safetensors(
        "lenient.safetensors", {{m + ".lora_down.weight", b}, {m + ".lora_up.weight", a}, {m + ".dora_scale", rnd({16, 1}, 4)}});
    const auto f = models::LoraFile::open(path, true);
    CHECK(f->modules().size() == 1 && f->ignored().size() == 1 && f->ignored()[0] == m + ".dora_scale");
    std::remove(path.c_str());
}

// 300 mutated LyCORIS files (factors reshaped with the same data, emptied, dropped, renamed, alphas of other shapes)
// loaded fused and unfused: an sdxl::Error or a result, never a crash, and a refused file changes nothing.
SDXL_TEST(lora_lycoris_mutations_never_crash) {
    const models::UNet2DConditionModel u(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f)));
    const Step in = step(31);
    const Tensor base = run(u, in);
    const auto original = lycoris_tensors();
    uint64_t state = 12345;
    auto next = [&](uint64_t n) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return (state >> 33) % n;
    };
    int refused = 0, applied = 0;
    for (int i = 0; i < 300; ++i) {
        auto t = original;
        const size_t idx = size_t(next(t.size()));
        std::string& name = t[idx].first;
        Tensor& tensor = t[idx].second;
        const Shape s = tensor.shape();
        switch (next(6)) {
            case 0:  // the same values in another 2-D shape (a divisor of numel as rows)
                for (int64_t r = 1 + int64_t(next(uint64_t(tensor.numel()))); r <= tensor.numel(); ++r)
                    if (tensor.numel() % r == 0) {
                        tensor = tensor.contiguous().view({r, tensor.numel() / r});
                        break;
                    }
                break;
            case 1:  // dims reversed (4-D and 2-D alike)
                tensor = tensor.contiguous().view(Shape(s.rbegin(), s.rend()));
                break;
            case 2:  // emptied: a zero dim
                tensor = Tensor::empty({0, s.empty() ? 1 : s.back()}, DType::F32);
                break;
            case 3:  // dropped
                t.erase(t.begin() + std::ptrdiff_t(idx));
                break;
            case 4:  // a part renamed to another part's name of the same or the other kind
                name = name.substr(0, name.rfind('.')) + (next(2) ? ".lokr_w2" : ".hada_t1");
                break;
            default:  // a flattened 1-D or 3-D version
                tensor = next(2) ? tensor.contiguous().view({tensor.numel()}) : tensor.contiguous().view({1, 1, tensor.numel()});
                break;
        }
        // Duplicate names (a rename onto an existing part) are a bad header; keep the first.
        std::vector<std::pair<std::string, Tensor>> unique;
        for (const auto& e : t)
            if (std::none_of(unique.begin(), unique.end(), [&](const auto& f) { return f.first == e.first; }))
                unique.push_back(e);
        const std::string path = write_safetensors("mutated.safetensors", unique);
        try {
            CHECK(u.set_loras({{models::LoraFile::open(path, i % 4 == 0), 0.7, i % 2 == 0}}).size() < 100);
            ++applied;
            CHECK(u.set_loras({}).empty());
        } catch (const Error& e) {
            ++refused;
            CHECK_MSG(e.code() == ErrorCode::BAD_MODEL_FILE, e.what());
        }
        std::remove(path.c_str());
    }
    std::printf("mutated LyCORIS files: %d refused, %d applied\n", refused, applied);
    CHECK(refused > 100);
    CHECK_MSG(same_bits(run(u, in), base), "after the mutated files the model must be as before");
}

// Weights that are views into a weight file's copy-on-write mapping keep no saved copy when a LoRA is fused into
// them (the file still holds the originals): no allocation survives the fuse, and unloading reads the file's bytes
// back (whole pages by dropping their private copies), bit for bit.
SDXL_TEST(lora_fused_into_mapped_weights_keeps_no_copy) {
    const models::UNet2DConditionModel src(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f)));
    std::vector<std::pair<std::string, Tensor>> all;
    for (const std::string& k : src.weight_table()->keys()) all.emplace_back(k, src.weight_table()->find(k));
    const std::string weights = write_safetensors("mapped_unet.safetensors", all);
    const models::UNet2DConditionModel u(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::safetensors_source({weights})));
    const std::string peft = peft_file();
    const Step in = step(31);
    const Tensor base = run(u, in);
    const auto before = touched(u);
    const models::LoraStack loras = stack({{peft, 0.8}}, true);
    const Tensor ff = u.weight_table()->find(std::string(kAttn) + "ff.net.0.proj.weight");  // [128, 16]: 2 whole pages
    CHECK_MSG(ff.storage()->has_original(), "the weights must be views into the file for this test");

    const int64_t live = Storage::live_allocated_bytes(Device::CPU);
    CHECK(u.set_loras(loras).empty());
    const int64_t kept = Storage::live_allocated_bytes(Device::CPU) - live;
    size_t copies = 0;
    for (const auto& [key, saved] : u.weight_table()->originals) copies += saved.defined() ? 1 : 0;
    std::printf("lora fused into mapped weights: %zu weights touched, %zu saved copies, %lld bytes kept allocated\n",
                u.weight_table()->originals.size(), copies, static_cast<long long>(kept));
    CHECK_MSG(u.weight_table()->originals.size() >= 10 && copies == 0, "file-backed weights were copied");
    CHECK_MSG(kept == 0, "fusing kept " << kept << " bytes allocated");
    const Tensor fused = run(u, in);
    CHECK_MSG(max_abs_diff(fused, base) > 1e-3, "the LoRA must change the output");

    CHECK(u.set_loras(stack({{peft, 0.3}}, true)).empty());  // a new scale: recomputed from the file's originals
    CHECK(u.set_loras(loras).empty());
    CHECK_MSG(same_bits(run(u, in), fused), "re-fusing from the file's originals gave other weights");
    CHECK(u.set_loras({}).empty());
    CHECK_MSG(untouched(u, before), "unloading did not give the file's weights back");
    CHECK_MSG(same_bits(ff, src.weight_table()->find(std::string(kAttn) + "ff.net.0.proj.weight")), "ff.net.0.proj");
    CHECK_MSG(same_bits(run(u, in), base), "unloading did not restore the output bit for bit");
    std::remove(peft.c_str());
    std::remove(weights.c_str());
}

// LoRA files stored in fp8 (F8_E4M3) are widened at load as checkpoints are: a file whose values are exactly
// representable in e4m3 fuses to the same weights as its F32 twin.
SDXL_TEST(lora_fp8_file_fuses_as_its_f32_twin) {
    // e4m3fn (bias 7, 3 mantissa bits): +-2^e * (1 + m/8) for e in [-6, 8] is code sign | (e + 7) << 3 | m.
    auto code = [](int sign, int e, int m) { return uint8_t((sign << 7) | ((e + 7) << 3) | m); };
    auto value = [](int sign, int e, int m) { return float((sign ? -1 : 1) * std::ldexp(1.0 + m / 8.0, e)); };
    std::vector<std::pair<std::string, Tensor>> f32;
    std::vector<std::pair<std::string, std::vector<uint8_t>>> f8;
    uint64_t seed = 900;
    auto add = [&](const std::string& key, const Shape& s) {
        Tensor t = Tensor::empty(s, DType::F32);
        std::vector<uint8_t> codes(size_t(t.numel()));
        for (int64_t i = 0; i < t.numel(); ++i) {
            const uint64_t h = (seed * 0x9E3779B97F4A7C15ull + uint64_t(i) * 0xBF58476D1CE4E5B9ull) >> 40;
            const int sign = int(h & 1), e = -4 + int((h >> 1) % 4), m = int((h >> 3) % 8);
            codes[size_t(i)] = code(sign, e, m);
            t.data<float>()[i] = value(sign, e, m);
        }
        ++seed;
        f32.emplace_back(key, t);
        f8.emplace_back(key, codes);
    };
    const std::string m = std::string("unet.") + kAttn + "attn1.to_q";
    add(m + ".lora_A.weight", {2, 16});
    add(m + ".lora_B.weight", {16, 2});
    const std::string plain = write_safetensors("fp8_twin_f32.safetensors", f32);
    // The same tensors as F8_E4M3 (one byte each).
    std::string h = "{", data;
    for (size_t i = 0; i < f8.size(); ++i) {
        const Shape& s = f32[i].second.shape();
        h += (i ? "," : "") + std::string("\"") + f8[i].first + "\":{\"dtype\":\"F8_E4M3\",\"shape\":[" +
             std::to_string(s[0]) + "," + std::to_string(s[1]) + "],\"data_offsets\":[" + std::to_string(data.size()) + ",";
        data.append(reinterpret_cast<const char*>(f8[i].second.data()), f8[i].second.size());
        h += std::to_string(data.size()) + "]}";
    }
    h += "}";
    while (h.size() % 8) h += ' ';
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((uint64_t(h.size()) >> (8 * i)) & 0xff);
    const std::string fp8 = plain.substr(0, plain.size() - std::strlen("f32.safetensors")) + "fp8.safetensors";
    std::ofstream(fp8, std::ios::binary | std::ios::trunc).write((bytes + h + data).data(), std::streamsize(8 + h.size() + data.size()));

    const models::UNet2DConditionModel u(sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f)));
    const std::string key = std::string(kAttn) + "attn1.to_q.weight";
    CHECK(u.set_loras(stack({{plain, 0.7}}, true)).empty());
    const Tensor want = u.weight_table()->find(key).clone();
    CHECK(u.set_loras(stack({{fp8, 0.7}}, true)).empty());
    CHECK_MSG(same_bits(u.weight_table()->find(key), want), "the fp8 LoRA fused to other weights than its F32 twin");
    CHECK(u.set_loras({}).empty());
    std::remove(plain.c_str());
    std::remove(fp8.c_str());
}
