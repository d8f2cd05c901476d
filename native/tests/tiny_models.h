// The project's reference data root and the configs of its tiny models (models/tiny-sdxl-{base,refiner}/*/config.json),
// for native tests that load them through the public API.
#pragma once

#include <cstdlib>
#include <string>

#include "sdxl/sdxl.h"

namespace sdxl_test {

inline std::string reference_root() {
    if (const char* env = std::getenv("SDXL4J_REFERENCE")) return env;
    return SDXL_REFERENCE_DIR;
}

// The tiny reference models' configs (models/tiny-sdxl-{base,refiner}/*/config.json).
inline sdxl::api::ClipTextConfig tiny_text_encoder(bool second) {
    sdxl::api::ClipTextConfig c = second ? sdxl::api::ClipTextConfig::sdxl_text_encoder_2() : sdxl::api::ClipTextConfig::sdxl_text_encoder();
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

inline sdxl::api::UNetConfig tiny_unet(bool refiner) {
    sdxl::api::UNetConfig c = refiner ? sdxl::api::UNetConfig::sdxl_refiner() : sdxl::api::UNetConfig::sdxl_base();
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

inline sdxl::api::VaeConfig tiny_vae() {
    sdxl::api::VaeConfig c = sdxl::api::VaeConfig::sdxl();
    c.block_out_channels = {16, 32, 32, 32};
    c.layers_per_block = 2;
    c.norm_num_groups = 8;
    c.sample_size = 64;
    return c;
}

// A refiner-shaped 4-level UNet, small: channels (8, 16, 16, 16), 4 groups, cross-attention at levels 1 and 2,
// context 12, 5 time ids of 4 features + 6 pooled features = 26.
inline sdxl::api::UNetConfig tiny4_unet() {
    sdxl::api::UNetConfig c;
    c.in_channels = 4;
    c.out_channels = 4;
    c.block_out_channels = {8, 16, 16, 16};
    c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
    c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
    c.mid_block_type = "UNetMidBlock2DCrossAttn";
    c.layers_per_block = 1;
    c.transformer_layers_per_block = {1, 1, 2, 1};
    c.num_attention_heads = {2, 2, 4, 2};
    c.cross_attention_dim = 12;
    c.norm_num_groups = 4;
    c.norm_eps = 1e-5f;
    c.use_linear_projection = true;
    c.flip_sin_to_cos = true;
    c.freq_shift = 0;
    c.addition_embed_type = "text_time";
    c.addition_time_embed_dim = 4;
    c.projection_class_embeddings_input_dim = 5 * 4 + 6;
    return c;
}

}  // namespace sdxl_test
