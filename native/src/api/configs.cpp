// Defaults (diffusers/transformers constructor defaults) and the real SDXL 1.0 configs.
#include "sdxl/configs.h"

#include <cmath>

namespace sdxl {
namespace api {

ClipTextConfig::ClipTextConfig()
    : vocab_size(49408), hidden_size(512), intermediate_size(2048), num_hidden_layers(12), num_attention_heads(8),
      max_position_embeddings(77), hidden_act("quick_gelu"), layer_norm_eps(1e-5f), with_projection(false),
      projection_dim(512), eos_token_id(2) {}

ClipTextConfig ClipTextConfig::sdxl_text_encoder() {
    // {"hidden_act": "quick_gelu", "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
    //  "num_hidden_layers": 12, "projection_dim": 768, "eos_token_id": 2, "layer_norm_eps": 1e-05, "vocab_size": 49408}
    ClipTextConfig c;
    c.hidden_size = 768;
    c.intermediate_size = 3072;
    c.num_attention_heads = 12;
    c.num_hidden_layers = 12;
    c.projection_dim = 768;
    c.hidden_act = "quick_gelu";
    return c;
}

ClipTextConfig ClipTextConfig::sdxl_text_encoder_2() {
    // {"architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
    //  "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280,
    //  "eos_token_id": 2, "layer_norm_eps": 1e-05, "vocab_size": 49408}
    ClipTextConfig c;
    c.hidden_size = 1280;
    c.intermediate_size = 5120;
    c.num_attention_heads = 20;
    c.num_hidden_layers = 32;
    c.projection_dim = 1280;
    c.hidden_act = "gelu";
    c.with_projection = true;
    return c;
}

UNetConfig::UNetConfig()
    : in_channels(4), out_channels(4), block_out_channels{320, 640, 1280, 1280},
      down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
      up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
      mid_block_type("UNetMidBlock2DCrossAttn"), layers_per_block(2), transformer_layers_per_block{1, 1, 1, 1},
      num_attention_heads{8, 8, 8, 8}, cross_attention_dim(1280), norm_num_groups(32), norm_eps(1e-5f),
      use_linear_projection(false), flip_sin_to_cos(true), freq_shift(0), addition_embed_type(""),
      addition_time_embed_dim(0), projection_class_embeddings_input_dim(0), conv_in_kernel(3), conv_out_kernel(3),
      downsample_padding(1), mid_block_scale_factor(1) {}

UNetConfig UNetConfig::sdxl_base() {
    // unet/config.json: block_out_channels [320, 640, 1280], down [DownBlock2D, CrossAttnDownBlock2D x2],
    // up [CrossAttnUpBlock2D x2, UpBlock2D], attention_head_dim [5, 10, 20], transformer_layers_per_block
    // [1, 2, 10], cross_attention_dim 2048, use_linear_projection, addition_embed_type "text_time",
    // addition_time_embed_dim 256, projection_class_embeddings_input_dim 2816, norm_num_groups 32.
    UNetConfig c;
    c.block_out_channels = {320, 640, 1280};
    c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
    c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
    c.transformer_layers_per_block = {1, 2, 10};
    c.num_attention_heads = {5, 10, 20};
    c.cross_attention_dim = 2048;
    c.use_linear_projection = true;
    c.addition_embed_type = "text_time";
    c.addition_time_embed_dim = 256;
    c.projection_class_embeddings_input_dim = 2816;
    return c;
}

UNetConfig UNetConfig::sdxl_refiner() {
    // unet/config.json: block_out_channels [384, 768, 1536, 1536], down [DownBlock2D, CrossAttnDownBlock2D x2,
    // DownBlock2D], up [UpBlock2D, CrossAttnUpBlock2D x2, UpBlock2D], attention_head_dim [6, 12, 24, 24],
    // transformer_layers_per_block 4, cross_attention_dim 1280, addition_time_embed_dim 256,
    // projection_class_embeddings_input_dim 2560, use_linear_projection.
    UNetConfig c;
    c.block_out_channels = {384, 768, 1536, 1536};
    c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
    c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
    c.transformer_layers_per_block = {4, 4, 4, 4};
    c.num_attention_heads = {6, 12, 24, 24};
    c.cross_attention_dim = 1280;
    c.use_linear_projection = true;
    c.addition_embed_type = "text_time";
    c.addition_time_embed_dim = 256;
    c.projection_class_embeddings_input_dim = 2560;
    return c;
}

VaeConfig::VaeConfig()
    : in_channels(3), out_channels(3), latent_channels(4), block_out_channels{64}, layers_per_block(1),
      norm_num_groups(32), scaling_factor(0.18215f), force_upcast(true), sample_size(32) {}

VaeConfig VaeConfig::sdxl() {
    // vae/config.json: block_out_channels [128, 256, 512, 512], layers_per_block 2, latent_channels 4,
    // norm_num_groups 32, scaling_factor 0.13025, force_upcast true, sample_size 1024.
    VaeConfig c;
    c.block_out_channels = {128, 256, 512, 512};
    c.layers_per_block = 2;
    c.scaling_factor = 0.13025f;
    c.sample_size = 1024;
    return c;
}

SchedulerConfig::SchedulerConfig()
    : num_train_timesteps(-1), beta_start(NAN), beta_end(NAN), steps_offset(-1), use_karras_sigmas(-1),
      clip_sample(-1), clip_sample_range(NAN), set_alpha_to_one(-1), skip_prk_steps(-1), solver_order(-1),
      lower_order_final(-1), euler_at_final(-1), thresholding(-1), dynamic_thresholding_ratio(NAN),
      sample_max_value(NAN), rescale_betas_zero_snr(-1), predict_x0(-1), lambda_min_clipped(NAN),
      noise_sampler_seed(-1), eta(NAN), has_trained_betas(false) {}

}  // namespace api
}  // namespace sdxl
