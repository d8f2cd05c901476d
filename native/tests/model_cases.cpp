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
//
// VAE tiling (diffusers 0.31 enable_tiling / tiled_decode / _tiled_encode), on every VAE case:
//  (a) a tiled run that needs one tile (tiling on and the image fits; or forced with a tile that covers it)
//      equals the one-pass run exactly;
//  (b) a forced tiled run with small tiles (several tiles, both blend directions) equals the independent
//      implementation below (each tile through the one-pass decoder/encoder, blended by diffusers' formulas)
//      to fp32 rounding: max|diff| <= 1e-6 + 1e-6 |ref| in f32; in f16/bf16 the model rounds the blended
//      result to its dtype once (the reference here stays f32): <= 2^-11 |ref| (f16) / 2^-8 |ref| (bf16)
//      + 1e-6. Also against diffusers' untiled output: no NaN/Inf (tiles see less context: not close);
//  (c) emulated CUDA only: with the emulated device's capacity (what SDXL4J_EMU_DEVICE_BYTES sets) cut so that a
//      one-pass decode runs out of memory but tiles fit, decode() with the OOM fallback succeeds tiled and
//      matches (b)'s independent result with (b)'s tolerance.
// Inf counts as NaN everywhere (a bf16 VAE, run without the fp32 upcast, must stay finite).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "mini_json.h"
#include "sdxl/sdxl.h"
#ifdef SDXL_CUDA_EMULATOR
#include "backends/cuda/emulator/emu_runtime.h"
#endif

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
    c.sample_size = 64;
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
        if (!std::isfinite(g[i]) || !std::isfinite(w[i])) c.nan = true;
        const double d = double(g[i]) - double(w[i]);
        c.max_abs = std::fmax(c.max_abs, std::fabs(d));
        num += d * d;
        den += double(w[i]) * double(w[i]);
    }
    c.nmse = den > 0 ? num / den : num;
    return c;
}

// ---- an independent tiled decode/encode, written from diffusers 0.31's description (not the model's code)

// [B, C, h, w] F32 on the host.
struct Grid {
    int64_t b = 0, c = 0, h = 0, w = 0;
    std::vector<float> v;
    float& at(int64_t n, int64_t ch, int64_t y, int64_t x) { return v[size_t(((n * c + ch) * h + y) * w + x)]; }
};

Grid grid(const Tensor& t) {
    const std::vector<int64_t> s = t.shape();
    Grid g{s[0], s[1], s[2], s[3], floats(t)};
    return g;
}

// tile (i, j) of `tiles` after diffusers' blend_v with the tile above and blend_h with the tile to the left,
// each weight w = y / extent rounded to float (torch multiplies float32 tensors by Python floats that way).
void blend_into(std::vector<std::vector<Grid>>& tiles, size_t i, size_t j, int64_t extent) {
    Grid& cur = tiles[i][j];
    if (i > 0) {
        Grid& up = tiles[i - 1][j];
        const int64_t e = std::min({up.h, cur.h, extent});
        for (int64_t y = 0; y < e; ++y)
            for (int64_t n = 0; n < cur.b; ++n)
                for (int64_t ch = 0; ch < cur.c; ++ch)
                    for (int64_t x = 0; x < cur.w; ++x)
                        cur.at(n, ch, y, x) = up.at(n, ch, up.h - e + y, x) * float(1.0 - double(y) / e) +
                                              cur.at(n, ch, y, x) * float(double(y) / e);
    }
    if (j > 0) {
        Grid& left = tiles[i][j - 1];
        const int64_t e = std::min({left.w, cur.w, extent});
        for (int64_t n = 0; n < cur.b; ++n)
            for (int64_t ch = 0; ch < cur.c; ++ch)
                for (int64_t y = 0; y < cur.h; ++y)
                    for (int64_t x = 0; x < e; ++x)
                        cur.at(n, ch, y, x) = left.at(n, ch, y, left.w - e + x) * float(1.0 - double(x) / e) +
                                              cur.at(n, ch, y, x) * float(double(x) / e);
    }
}

// Crops each blended tile to its first `limit` rows/columns and lays them out row by row.
Tensor assemble(std::vector<std::vector<Grid>>& tiles, int64_t limit) {
    int64_t H = 0, W = 0;
    for (auto& row : tiles) H += std::min(limit, row[0].h);
    for (Grid& t : tiles[0]) W += std::min(limit, t.w);
    const Grid& f = tiles[0][0];
    std::vector<float> out(size_t(f.b * f.c * H * W));
    int64_t y0 = 0;
    for (auto& row : tiles) {
        int64_t x0 = 0;
        for (Grid& t : row) {
            for (int64_t n = 0; n < t.b; ++n)
                for (int64_t ch = 0; ch < t.c; ++ch)
                    for (int64_t y = 0; y < std::min(limit, t.h); ++y)
                        for (int64_t x = 0; x < std::min(limit, t.w); ++x)
                            out[size_t(((n * f.c + ch) * H + y0 + y) * W + x0 + x)] = t.at(n, ch, y, x);
            x0 += std::min(limit, t.w);
        }
        y0 += std::min(limit, row[0].h);
    }
    return Tensor::from_floats(out.data(), {f.b, f.c, H, W});
}

// Cuts `in` [B, C, H, W] into tiles of `size` every `step` and maps each tile through `one_pass`.
template <typename F>
std::vector<std::vector<Grid>> map_tiles(const Tensor& in, int64_t size, int64_t step, const F& one_pass) {
    const std::vector<int64_t> s = in.shape();
    std::vector<std::vector<Grid>> tiles;
    for (int64_t i = 0; i < s[2]; i += step) {
        tiles.emplace_back();
        for (int64_t j = 0; j < s[3]; j += step)
            tiles.back().push_back(grid(one_pass(
                in.narrow(2, i, std::min(size, s[2] - i)).narrow(3, j, std::min(size, s[3] - j)).contiguous())));
    }
    return tiles;
}

// diffusers' tiled_decode with tile_sample_min_size `tile` px, overlap 0.25, on a VAE with factor 8.
Tensor reference_tiled_decode(const VaeModel& m, const Tensor& z, int64_t tile) {
    const int64_t latent_tile = tile / 8, step = int64_t(latent_tile * 0.75), blend = int64_t(tile * 0.25);
    auto tiles = map_tiles(z, latent_tile, step,
                           [&](const Tensor& t) { return m.decode_with(t, VAE_TILING_OFF, 0, 0.25); });
    for (size_t i = 0; i < tiles.size(); ++i)
        for (size_t j = 0; j < tiles[i].size(); ++j) blend_into(tiles, i, j, blend);
    return assemble(tiles, tile - blend);
}

// diffusers' _tiled_encode: returns [mean, logvar, std] (mean and logvar blended, std = exp(logvar / 2)).
std::vector<Tensor> reference_tiled_encode(const VaeModel& m, const Tensor& image, int64_t tile) {
    const int64_t latent_tile = tile / 8, step = int64_t(tile * 0.75), blend = int64_t(latent_tile * 0.25);
    std::vector<Tensor> out;
    for (int part = 0; part < 2; ++part) {
        auto tiles = map_tiles(image, tile, step, [&](const Tensor& t) {
            return m.encode_with(t, VAE_TILING_OFF, 0, 0.25).get(part);
        });
        for (size_t i = 0; i < tiles.size(); ++i)
            for (size_t j = 0; j < tiles[i].size(); ++j) blend_into(tiles, i, j, blend);
        out.push_back(assemble(tiles, latent_tile - blend));
    }
    std::vector<float> sd = floats(out[1]);
    for (float& v : sd) v = std::exp(0.5f * v);
    out.push_back(Tensor::from_floats(sd.data(), out[1].shape()));
    return out;
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

    // (a): bit-identical.
    bool check_exact(const std::string& what, const Tensor& got, const Tensor& want) {
        const std::vector<float> g = floats(got), w = floats(want);
        bool ok = g.size() == w.size();
        size_t bad = 0;
        for (size_t i = 0; ok && i < g.size(); ++i) bad += !(g[i] == w[i]) || !std::isfinite(g[i]);
        ok = ok && bad == 0;
        std::cout << (ok ? "ok   " : "FAIL ") << what << ": " << bad << " elements differ (exact)\n";
        (ok ? passed : failed)++;
        return ok;
    }

    // (b), (c): to one rounding of the model's dtype.
    bool check_tiled(const std::string& what, const Tensor& got, const Tensor& want) {
        const std::vector<float> g = floats(got), w = floats(want);
        const double rel = dtype == DTYPE_F32 ? 1e-6 : dtype == DTYPE_F16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
        bool ok = g.size() == w.size() && !g.empty();
        double worst = 0;  // max |diff| / allowed
        for (size_t i = 0; ok && i < g.size(); ++i) {
            if (!std::isfinite(g[i]) || !std::isfinite(w[i])) ok = false;
            worst = std::fmax(worst, std::fabs(double(g[i]) - w[i]) / (1e-6 + rel * std::fabs(double(w[i]))));
        }
        ok = ok && worst <= 1.0;
        char line[160];
        std::snprintf(line, sizeof line, "max |diff| / (1e-6 + %.3g |ref|) = %.3g (<= 1)", rel, worst);
        std::cout << (ok ? "ok   " : "FAIL ") << what << ": " << line << "\n";
        (ok ? passed : failed)++;
        return ok;
    }

    // diffusers' untiled output vs a tiled run: only finiteness is asserted, the distance is printed.
    void report_finite(const std::string& what, const Tensor& got, const Tensor& untiled) {
        const Compare c = compare(got, untiled);
        std::cout << (c.nan ? "FAIL " : "ok   ") << what << ": finite; vs untiled max|diff| " << c.max_abs
                  << ", nmse " << c.nmse << "\n";
        (c.nan ? failed : passed)++;
    }

    // (a) and (b) on one decode case. The tiny VAE's sample_size 64 = 8 latent rows per tile.
    void vae_tiling_decode(const VaeModel& m, const std::string& name, const Tensor& z, const Tensor& want) {
        const Tensor plain = m.decode_with(z, VAE_TILING_OFF, 0, 0.25);
        const std::vector<int64_t> s = z.shape();
        const int64_t side = std::max(s[2], s[3]);
        if (side <= 8) check_exact("vae " + name + " tiling on, fits one tile", m.decode_with(z, VAE_TILING_AUTO, 0, 0.25), plain);
        // a tile every int(0.75 * latent_tile) >= side rows: one tile
        const int64_t one_tile = 8 * ((side * 4 + 2) / 3 + 1);
        check_exact("vae " + name + " tiled_decode, one tile", m.decode_with(z, VAE_TILING_ALWAYS, one_tile, 0.25), plain);
        // 32 px tiles: 4 latent rows, a tile every 3, 8 px blended, 24 kept
        const Tensor tiled = m.decode_with(z, VAE_TILING_ALWAYS, 32, 0.25);
        check_tiled("vae " + name + " tiled_decode 32 px vs independent", tiled, reference_tiled_decode(m, z, 32));
        report_finite("vae " + name + " tiled_decode 32 px vs diffusers' untiled", tiled, want);
    }

    void vae_tiling_encode(const VaeModel& m, const std::string& name, const Tensor& image) {
        const TensorList plain = m.encode_with(image, VAE_TILING_OFF, 0, 0.25);
        const std::vector<int64_t> s = image.shape();
        const int64_t side = std::max(s[2], s[3]);
        const char* parts[3] = {"mean", "logvar", "std"};
        if (side <= 64) {
            const TensorList fit = m.encode_with(image, VAE_TILING_AUTO, 0, 0.25);
            for (int k = 0; k < 3; ++k)
                check_exact("vae " + name + " tiling on, fits one tile, " + parts[k], fit.get(k), plain.get(k));
        }
        const TensorList one = m.encode_with(image, VAE_TILING_ALWAYS, 8 * ((side * 4 / 3 + 8) / 8 + 1), 0.25);
        for (int k = 0; k < 3; ++k)
            check_exact("vae " + name + " tiled_encode, one tile, " + parts[k], one.get(k), plain.get(k));
        // 64 px tiles: a tile every 48 px, 8 latent rows per tile, 2 blended, 6 kept
        const TensorList tiled = m.encode_with(image, VAE_TILING_ALWAYS, 64, 0.25);
        const std::vector<Tensor> ref = reference_tiled_encode(m, image, 64);
        for (int k = 0; k < 3; ++k)
            check_tiled("vae " + name + " tiled_encode 64 px vs independent, " + parts[k], tiled.get(k), ref[size_t(k)]);
    }

    // (c): the emulated device's capacity cut to the weights + 1 MiB. A one-pass decode of 16x16 latents
    // (128x128 px) needs two live 1 MiB F32 activations (16 channels at 128x128) at its last level; 32 px tiles
    // need a few 64 KiB ones. Runs where the caching allocator is off (SDXL4J_CUDA_CACHE=0), so that in-use
    // bytes are the live tensors.
    void vae_oom_fallback(VaeModel& m) {
#ifdef SDXL_CUDA_EMULATOR
        if (device != DEVICE_CUDA) return;
        Generator g(1234);
        const Tensor z = g.randn({1, 4, 16, 16});
        const Tensor ref = reference_tiled_decode(m, z, 32);
        const size_t saved = sdxl_emu::device_capacity();
        const size_t budget = sdxl_emu::device_bytes_in_use() + (size_t(1) << 20);
        sdxl_emu::set_device_capacity(budget);
        bool full_failed = false;
        try {
            m.set_oom_fallback(false);
            (void)m.decode_with(z, VAE_TILING_OFF, 32, 0.25);
        } catch (const std::exception& e) {
            full_failed = std::string(e.what()).find("OUT_OF_MEMORY") != std::string::npos;
        }
        m.set_oom_fallback(true);
        std::cout << (full_failed ? "ok   " : "FAIL ") << "vae OOM: one-pass decode of 16x16 latents fails with "
                  << "OUT_OF_MEMORY at capacity in-use + 1 MiB\n";
        (full_failed ? passed : failed)++;
        try {
            const Tensor got = m.decode_with(z, VAE_TILING_OFF, 32, 0.25);  // falls back to 32 px tiles
            sdxl_emu::set_device_capacity(saved);
            check_tiled("vae OOM fallback (tiled retry) vs independent tiled decode", got, ref);
        } catch (const std::exception& e) {
            sdxl_emu::set_device_capacity(saved);
            std::cout << "FAIL vae OOM fallback: " << e.what() << "\n";
            failed++;
        }
#else
        (void)m;
#endif
    }

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
                vae_tiling_decode(m, name, f.get_f32("decoder_input"), f.get_f32("out"));
            } else {
                TensorList d = m.encode(f.get_f32("image"));
                check("vae " + name + " mean", d.get(0), f.get_f32("mean"));
                check("vae " + name + " logvar", d.get(1), f.get_f32("logvar"));
                check("vae " + name + " std", d.get(2), f.get_f32("std"));
                vae_tiling_encode(m, name, f.get_f32("image"));
            }
        }
        vae_oom_fallback(m);
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
