// Typed model configs: filled from diffusers/transformers config.json files by Java (Jackson), or by the
// named constructors below for the real SDXL 1.0 models (so native tools and benchmarks need no JSON).
// Parser-friendly: plain structs, public fields, std::vector<int64_t> / std::vector<std::string>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sdxl {
namespace api {

// transformers CLIPTextConfig (+ whether the model is CLIPTextModelWithProjection).
struct ClipTextConfig {
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t max_position_embeddings;
    std::string hidden_act;  // "quick_gelu" or "gelu"
    float layer_norm_eps;
    bool with_projection;    // CLIPTextModelWithProjection: text_projection (no bias) after pooling
    int64_t projection_dim;
    // eos_token_id == 2 selects transformers' legacy pooling: the position of the first highest token id.
    int64_t eos_token_id;

    ClipTextConfig();
    // stabilityai/stable-diffusion-xl-base-1.0 text_encoder/config.json (CLIP ViT-L/14 text tower).
    static ClipTextConfig sdxl_text_encoder();
    // stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/config.json (OpenCLIP bigG text tower).
    static ClipTextConfig sdxl_text_encoder_2();
};

// diffusers UNet2DConditionModel, the subset SDXL uses (others are rejected by the Java config reader).
struct UNetConfig {
    int64_t in_channels;
    int64_t out_channels;
    std::vector<int64_t> block_out_channels;
    std::vector<std::string> down_block_types;  // "DownBlock2D" | "CrossAttnDownBlock2D"
    std::vector<std::string> up_block_types;    // "UpBlock2D" | "CrossAttnUpBlock2D"
    std::string mid_block_type;                 // "UNetMidBlock2DCrossAttn"
    int64_t layers_per_block;
    std::vector<int64_t> transformer_layers_per_block;  // one per level (down order)
    std::vector<int64_t> num_attention_heads;           // one per level; diffusers reads attention_head_dim as this
    int64_t cross_attention_dim;
    int64_t norm_num_groups;
    float norm_eps;
    bool use_linear_projection;
    bool flip_sin_to_cos;
    float freq_shift;
    std::string addition_embed_type;  // "text_time"
    int64_t addition_time_embed_dim;
    int64_t projection_class_embeddings_input_dim;
    int64_t conv_in_kernel;
    int64_t conv_out_kernel;
    int64_t downsample_padding;
    float mid_block_scale_factor;

    UNetConfig();
    // stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
    static UNetConfig sdxl_base();
    // stabilityai/stable-diffusion-xl-refiner-1.0 unet/config.json
    static UNetConfig sdxl_refiner();
};

// diffusers AutoencoderKL (DownEncoderBlock2D / UpDecoderBlock2D, mid-block attention).
struct VaeConfig {
    int64_t in_channels;
    int64_t out_channels;
    int64_t latent_channels;
    std::vector<int64_t> block_out_channels;
    int64_t layers_per_block;
    int64_t norm_num_groups;
    float scaling_factor;
    bool force_upcast;
    int64_t sample_size;  // pixels; diffusers' tile_sample_min_size for tiled decode/encode

    VaeConfig();
    // stabilityai/stable-diffusion-xl-base-1.0 vae/config.json (the refiner's is the same)
    static VaeConfig sdxl();
};

// A diffusers scheduler config: class_name plus the keys of scheduler_config.json (and overrides) that were
// given. from_config semantics: every field left "unset" takes that scheduler class's own constructor
// default (in its native file), so Java forwards only what the JSON says. Unset = NaN for numbers, -1 for
// integers and tri-state booleans (0 false, 1 true), "" for strings.
struct SchedulerConfig {
    std::string class_name;  // e.g. "EulerDiscreteScheduler"
    int64_t num_train_timesteps;
    double beta_start;
    double beta_end;
    std::string beta_schedule;      // "linear" | "scaled_linear" | "squaredcos_cap_v2"
    std::string prediction_type;    // "epsilon" | "v_prediction" | "sample"
    std::string timestep_spacing;   // "leading" | "trailing" | "linspace"
    int64_t steps_offset;
    int use_karras_sigmas;
    int clip_sample;
    double clip_sample_range;
    int set_alpha_to_one;
    int skip_prk_steps;
    std::string interpolation_type;  // Euler: "linear" | "log_linear"
    std::string timestep_type;       // Euler: "discrete" | "continuous"
    std::string final_sigmas_type;   // "zero" | "sigma_min"
    std::string algorithm_type;      // DPM-Solver: "dpmsolver++" | "sde-dpmsolver++" | ...; DEIS: "deis"
    int64_t solver_order;
    std::string solver_type;         // "midpoint" | "heun" | "bh1" | "bh2" | "logrho"
    int lower_order_final;
    int euler_at_final;
    int thresholding;
    double dynamic_thresholding_ratio;
    double sample_max_value;
    std::string variance_type;       // DDPM: "fixed_small" | ...
    int rescale_betas_zero_snr;
    int predict_x0;                  // UniPC
    std::vector<int64_t> disable_corrector;  // UniPC
    double lambda_min_clipped;       // DPM-Solver
    int64_t noise_sampler_seed;      // DPMSolverSDE; -1 = unset (random)
    double eta;                      // DDIM step eta (a step() argument in diffusers; 0 by default)
    bool has_trained_betas;          // trained_betas given: not supported

    SchedulerConfig();
};

}  // namespace api
}  // namespace sdxl
