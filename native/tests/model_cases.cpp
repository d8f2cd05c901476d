// The model-level reference cases without a JVM: every case listed in cases/{text_encoder,unet,vae}/index.json
// of a reference set, run through the public native API (sdxl.h) on a chosen device and compute dtype, with
// weights read by the native safetensors reader and the tiny models' configs written out below (values from
// their config.json files). For the GPU machine, which has no JDK:
//
//   sdxl_model_cases                                   CPU, F32 (also a CTest here)
//   sdxl_model_cases --device cuda --dtype f16         the same cases on CUDA in fp16 (bf16, f32 likewise)
//   sdxl_model_cases --reference /path/to/reference    another reference set with the same layout
//
// Tolerances. F32 (either device): max |diff| <= 1e-4, the Java reference tests' bound (the reference's own
// fp32-vs-fp64 differences are ~1e-5). F16/BF16: by normalised MSE against the fp32 reference,
// NMSE <= 1e-4 (f16: 11-bit significands, each of the ~100 ops in a tiny UNet adds relative error ~2^-12)
// and <= 2e-3 (bf16: 8-bit significands, 8x the error per op, squared in NMSE) -- and for the UNet cases that
// store it, our bf16 result is also compared with torch's own bf16 output (printed). Any NaN fails (the VAE
// must never return NaN, in any dtype).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "mini_json.h"
#include "sdxl/sdxl.h"

using namespace sdxl::api;
namespace json = sdxl_test::json;

namespace {

ClipTextConfig tiny_text_encoder(bool second) {
    ClipTextConfig c = second ? ClipTextConfig::sdxl_text_encoder_2() : ClipTextConfig::sdxl_text_encoder();
    c.vocab_size = 49408;
    c.hidden_size = second ? 48 : 32;
    c.intermediate_size = second ? 96 : 64;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 4;
    c.max_position_embeddings = 77;
    c.hidden_act = second ? "gelu" : "quick_gelu";
    c.layer_norm_eps = 1e-5f;
    c.with_projection = second;
    c.projection_dim = second ? 24 : 32;
    c.eos_token_id = 2;
    return c;
}

UNetConfig tiny_unet(bool refiner) {
    UNetConfig c = refiner ? UNetConfig::sdxl_refiner() : UNetConfig::sdxl_base();
    c.in_channels = 4;
    c.out_channels = 4;
    c.layers_per_block = 2;
    c.norm_num_groups = 8;
    c.norm_eps = 1e-5f;
    c.use_linear_projection = true;
    c.addition_time_embed_dim = 8;
    if (refiner) {
        c.block_out_channels = {16, 32, 32, 32};
        c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
        c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
        c.transformer_layers_per_block = {2, 2, 2, 2};
        c.num_attention_heads = {2, 4, 4, 4};
        c.cross_attention_dim = 48;
        c.projection_class_embeddings_input_dim = 64;  // 5 ids x 8 + 24 pooled
    } else {
        c.block_out_channels = {16, 32, 32};
        c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
        c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
        c.transformer_layers_per_block = {1, 1, 2};
        c.num_attention_heads = {2, 4, 4};
        c.cross_attention_dim = 80;
        c.projection_class_embeddings_input_dim = 72;  // 6 ids x 8 + 24 pooled
    }
    return c;
}

VaeConfig tiny_vae() {
    VaeConfig c = VaeConfig::sdxl();
    c.block_out_channels = {16, 32, 32, 32};
    c.layers_per_block = 2;
    c.norm_num_groups = 8;
    c.latent_channels = 4;
    c.scaling_factor = 0.13025f;
    return c;
}

std::vector<float> floats(const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    t.copy_to_floats(v.data(), t.numel());
    return v;
}

struct Compare {
    double max_abs = 0, nmse = 0;
    bool nan = false;
};

Compare compare(const Tensor& got, const Tensor& want) {
    Compare c;
    const std::vector<float> g = floats(got), w = floats(want);
    if (g.size() != w.size()) {
        c.nan = true;
        return c;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < g.size(); ++i) {
        if (std::isnan(g[i]) || std::isnan(w[i])) c.nan = true;
        const double d = double(g[i]) - double(w[i]);
        c.max_abs = std::fmax(c.max_abs, std::fabs(d));
        num += d * d;
        den += double(w[i]) * double(w[i]);
    }
    c.nmse = den > 0 ? num / den : num;
    return c;
}

struct Runner {
    std::string root;
    int device = DEVICE_CPU, dtype = DTYPE_F32;
    int failed = 0, passed = 0;

    bool check(const std::string& what, const Tensor& got, const Tensor& want) {
        const Compare c = compare(got, want);
        bool ok;
        char line[256];
        if (dtype == DTYPE_F32) {
            ok = !c.nan && c.max_abs <= 1e-4;
            std::snprintf(line, sizeof line, "max|diff| %.3g (<= 1e-4)", c.max_abs);
        } else {
            const double tol = dtype == DTYPE_F16 ? 1e-4 : 2e-3;
            ok = !c.nan && c.nmse <= tol;
            std::snprintf(line, sizeof line, "nmse %.3g (<= %.0e), max|diff| %.3g", c.nmse, tol, c.max_abs);
        }
        std::cout << (ok ? "ok   " : "FAIL ") << what << ": " << line << (c.nan ? " NaN!" : "") << "\n";
        (ok ? passed : failed)++;
        return ok;
    }

    std::string model_dir(const std::string& rel) const { return root + "/models/" + rel; }

    void text_encoder() {
        const std::string group = root + "/cases/text_encoder/";
        const json::Value index = json::parse_file(group + "index.json");
        for (const json::Value& c : index["cases"].items) {
            const std::string name = c["name"].text(), model = c["params"]["model"].text();
            const bool second = model == "text_encoder_2";
            ClipTextModel m = ClipTextModel::load(tiny_text_encoder(second),
                                                  {model_dir("tiny-sdxl-base/" + model + "/model.safetensors")}, device, dtype);
            SafetensorsFile f = SafetensorsFile::open(group + c["file"].text());
            TensorList out = m.forward(f.get("input_ids"));
            // [last_hidden_state, pooled, hidden_states[0..n]]: hidden_states[-2] is the entry before the last
            check("text_encoder " + name + " last_hidden_state", out.get(0), f.get_f32("last_hidden_state"));
            check("text_encoder " + name + " pooled", out.get(1), f.get_f32("pooled"));
            check("text_encoder " + name + " hidden_states[-2]", out.get(out.size() - 2), f.get_f32("hidden_states_m2"));
        }
    }

    void unet() {
        const std::string group = root + "/cases/unet/";
        const json::Value index = json::parse_file(group + "index.json");
        for (const json::Value& c : index["cases"].items) {
            const std::string name = c["name"].text(), model = c["params"]["model"].text();
            const bool refiner = model.find("refiner") != std::string::npos;
            UNetModel m = UNetModel::load(tiny_unet(refiner), {model_dir(model + "/diffusion_pytorch_model.safetensors")},
                                          device, dtype);
            SafetensorsFile f = SafetensorsFile::open(group + c["file"].text());
            Tensor out = m.forward(f.get_f32("sample"), f.get("timestep"), f.get_f32("encoder_hidden_states"),
                                   f.get_f32("text_embeds"), f.get_f32("time_ids"));
            check("unet " + name, out, f.get_f32("out"));
            if (dtype == DTYPE_BF16 && f.contains("out_bfloat16")) {
                const Compare ours = compare(out, f.get_f32("out")), torch = compare(f.get_f32("out_bfloat16"), f.get_f32("out"));
                std::printf("     bf16 vs fp32 reference: ours nmse %.3g, torch's bf16 nmse %.3g\n", ours.nmse, torch.nmse);
            }
        }
    }

    void vae() {
        const std::string group = root + "/cases/vae/";
        const json::Value index = json::parse_file(group + "index.json");
        VaeModel m = VaeModel::load(tiny_vae(), {model_dir("tiny-sdxl-base/vae/diffusion_pytorch_model.safetensors")},
                                    device, dtype);
        for (const json::Value& c : index["cases"].items) {
            const std::string name = c["name"].text();
            SafetensorsFile f = SafetensorsFile::open(group + c["file"].text());
            if (f.contains("decoder_input")) {
                check("vae " + name, m.decode(f.get_f32("decoder_input")), f.get_f32("out"));
            } else {
                TensorList d = m.encode(f.get_f32("image"));
                check("vae " + name + " mean", d.get(0), f.get_f32("mean"));
                check("vae " + name + " logvar", d.get(1), f.get_f32("logvar"));
                check("vae " + name + " std", d.get(2), f.get_f32("std"));
            }
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    Runner r;
    r.root = SDXL_REFERENCE_DIR;
    if (const char* env = std::getenv("SDXL4J_REFERENCE")) r.root = env;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const std::string v = i + 1 < argc ? argv[i + 1] : "";
        if (a == "--reference" && !v.empty()) { r.root = v; ++i; }
        else if (a == "--device" && (v == "cpu" || v == "cuda")) { r.device = v == "cuda" ? DEVICE_CUDA : DEVICE_CPU; ++i; }
        else if (a == "--dtype" && (v == "f32" || v == "f16" || v == "bf16")) {
            r.dtype = v == "f16" ? DTYPE_F16 : v == "bf16" ? DTYPE_BF16 : DTYPE_F32;
            ++i;
        } else {
            std::cerr << "usage: sdxl_model_cases [--reference DIR] [--device cpu|cuda] [--dtype f32|f16|bf16]\n";
            return 2;
        }
    }
    if (r.device == DEVICE_CUDA && !cuda_available()) {
        std::cout << "model cases: skipped, no CUDA device (" << cuda_status() << ")\n";
        return 0;
    }
    std::cout << "model cases from " << r.root << " on " << (r.device == DEVICE_CUDA ? "cuda" : "cpu") << "\n";
    try {
        r.text_encoder();
        r.unet();
        r.vae();
    } catch (const std::exception& e) {
        std::cout << "FAIL: " << e.what() << "\n";
        return 1;
    }
    std::cout << "model cases: " << r.passed << " passed, " << r.failed << " failed\n";
    return r.failed == 0 ? 0 : 1;
}
