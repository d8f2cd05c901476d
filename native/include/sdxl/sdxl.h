// sdxl4j's public native API: the ONE header JavaCPP parses (see presets/). Plain classes, enums,
// std::string, std::vector<int64_t> and raw pointers + lengths only; the core's own headers stay private.
//
// Errors: every function may throw sdxl::Error (a std::runtime_error) whose what() reads
// "SDXL:<ERROR_CODE>: <message>"; JavaCPP carries it to Java, where it becomes SdxlException.
// Handles (Tensor, SafetensorsFile) are cheap to copy: copies share the same data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sdxl/configs.h"

namespace sdxl {
namespace api {

// Same names and numbers as io.sdxl4j.ErrorCode.
enum ErrorCode {
    INVALID_ARGUMENT = 1,
    NOT_FOUND = 2,
    BAD_MODEL_FILE = 3,
    OUT_OF_MEMORY = 4,
    DEVICE_ERROR = 5,
    CANCELLED = 6,
    UNSUPPORTED = 7,
    INTERNAL = 8
};

// Element types and devices (numbers shared with io.sdxl4j.DType / Device).
enum DTypeCode { DTYPE_F32 = 0, DTYPE_F16 = 1, DTYPE_BF16 = 2, DTYPE_I64 = 3 };
enum DeviceCode { DEVICE_CPU = 0, DEVICE_CUDA = 1 };

// A tensor handle. Default-constructed = undefined (used for "no bias", "no mask").
class Tensor {
public:
    Tensor();
    Tensor(const Tensor& other);
    ~Tensor();
    Tensor& operator=(const Tensor& other);

    bool defined() const;
    int dtype() const;
    int device() const;
    int ndim() const;
    std::vector<int64_t> shape() const;
    std::vector<int64_t> strides() const;
    int64_t numel() const;
    bool is_contiguous() const;
    std::string describe() const;

    // New contiguous CPU tensors copied from Java arrays. `data` holds numel elements.
    static Tensor from_floats(const float* data, const std::vector<int64_t>& shape);
    static Tensor from_longs(const int64_t* data, const std::vector<int64_t>& shape);
    // Raw little-endian bytes of the given dtype (numel * element size bytes).
    static Tensor from_bytes(const int8_t* data, int64_t nbytes, int dtype, const std::vector<int64_t>& shape);

    // Copies out (any device, any strides). count must equal numel (bytes: numel * element size).
    void copy_to_floats(float* out, int64_t count) const;  // converts from F16/BF16/I64
    void copy_to_longs(int64_t* out, int64_t count) const;  // I64 only
    void copy_to_bytes(char* out, int64_t nbytes) const;    // raw, in the tensor's dtype

    // Views and conversions.
    Tensor to_dtype(int dtype) const;
    Tensor to_device(int device) const;
    Tensor contiguous() const;
    Tensor reshape(const std::vector<int64_t>& shape) const;
    Tensor permute(const std::vector<int64_t>& dims) const;
    Tensor narrow(int dim, int64_t start, int64_t length) const;
    // True when both handles view the same storage (used to prove zero-copy loads).
    bool shares_storage_with(const Tensor& other) const;

private:
    friend struct TensorAccess;
    void* impl_;  // sdxl::Tensor*
};

// An ordered list of tensors (for concat and other many-input calls).
class TensorList {
public:
    TensorList();
    TensorList(const TensorList& other);
    ~TensorList();
    TensorList& operator=(const TensorList& other);
    void add(const Tensor& t);
    int64_t size() const;
    Tensor get(int64_t index) const;

private:
    void* impl_;  // std::vector<sdxl::Tensor>*
};

// A memory-mapped .safetensors file, parsed strictly. Tensors it returns keep the mapping alive.
class SafetensorsFile {
public:
    SafetensorsFile(const SafetensorsFile& other);
    ~SafetensorsFile();
    SafetensorsFile& operator=(const SafetensorsFile& other);

    static SafetensorsFile open(const std::string& path);
    std::string path() const;
    std::vector<std::string> names() const;  // sorted
    bool contains(const std::string& name) const;
    std::string dtype_name(const std::string& name) const;  // as written in the file, e.g. "F16"
    std::vector<int64_t> shape(const std::string& name) const;
    std::vector<std::string> metadata_keys() const;
    std::string metadata_value(const std::string& key) const;
    Tensor get(const std::string& name) const;      // zero-copy, the file's dtype
    Tensor get_f32(const std::string& name) const;  // F16/BF16/F8_E4M3/F8_E5M2 widened to F32

private:
    SafetensorsFile();
    void* impl_;  // std::shared_ptr<sdxl::io::SafetensorsFile>*
};

// A single-file SDXL checkpoint in the original SGM / AUTOMATIC1111 layout (Civitai, the Hub's
// sd_xl_base_1.0.safetensors): model.diffusion_model.* (UNet), first_stage_model.* (VAE),
// conditioner.embedders.0.transformer.* (CLIP-L) and conditioner.embedders.1.model.* (OpenCLIP-G; the refiner has
// only conditioner.embedders.0.model.*). open() refuses files that are not SDXL in this layout with BAD_MODEL_FILE
// naming what they look like (SD 1.x/2.x, SD3, Flux, a LoRA, ...), and pickles (.ckpt) without reading them.
// The models' load_single_file() map each component to diffusers names through an explicit key map: views into
// the mapped file where the layout allows, one small copy for OpenCLIP's transposed text_projection.
class SingleFileCheckpoint {
public:
    SingleFileCheckpoint(const SingleFileCheckpoint& other);
    ~SingleFileCheckpoint();
    SingleFileCheckpoint& operator=(const SingleFileCheckpoint& other);

    static SingleFileCheckpoint open(const std::string& path);
    std::string path() const;
    bool is_refiner() const;              // OpenCLIP-G only, as conditioner.embedders.0.model
    std::string storage_dtype() const;    // "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2" or "mixed"
    // "unet", "vae", "text_encoder" (base only), "text_encoder_2".
    bool has_component(const std::string& component) const;
    // The checkpoint tensor behind a diffusers key ("model.diffusion_model.input_blocks.1.0.in_layers.2.weight",
    // "...attn.in_proj_weight[48:96]", "...text_projection (transposed)"), or "" when the key map has none.
    std::string unet_source(const UNetConfig& config, const std::string& key) const;
    std::string vae_source(const VaeConfig& config, const std::string& key) const;
    std::string text_encoder_source(const ClipTextConfig& config, const std::string& component,
                                    const std::string& key) const;
    // The diffusers keys the checkpoint key feeds (three for a fused in_proj; none if the key map has no rule).
    std::vector<std::string> diffusers_keys(const UNetConfig& unet, const VaeConfig& vae,
                                            const ClipTextConfig& text_encoder_2, const std::string& key) const;

private:
    friend struct HandleAccess;
    SingleFileCheckpoint();
    void* impl_;  // std::shared_ptr<sdxl::models::SgmCheckpoint>*
};

// A LoRA file: kohya / AUTOMATIC1111 (lora_unet_ / lora_te1_ / lora_te2_, .lora_down / .lora_up / .alpha, UNet names in
// the SGM or the diffusers-path style, LoCon convs; LyCORIS LoHa .hada_* and LoKr .lokr_* under the same names) or
// diffusers / PEFT (unet. / text_encoder. / text_encoder_2., .lora_A / .lora_B). open() parses and checks it
// (BAD_MODEL_FILE listing what is wrong; keys of no known LoRA format too, naming LyCORIS kinds that are not
// supported such as OFT/BOFT or DoRA, unless lenient, which skips them); the models' set_loras() apply it.
class LoraFile {
public:
    LoraFile(const LoraFile& other);
    ~LoraFile();
    LoraFile& operator=(const LoraFile& other);

    static LoraFile open(const std::string& path, bool lenient);
    std::string path() const;
    std::string format() const;  // "kohya" or "peft"
    bool lenient() const;
    int64_t module_count() const;
    // "unet", "text_encoder", "text_encoder_2": the components it has modules for (in that order).
    std::vector<std::string> components() const;
    std::vector<std::string> ignored_keys() const;  // lenient: the keys skipped

private:
    friend struct HandleAccess;
    LoraFile();
    void* impl_;  // std::shared_ptr<const sdxl::models::LoraFile>*
};

// An ordered list of (LoRA, scale, mode): what set_loras() applies. fused: into the weights (diffusers' fuse_lora);
// otherwise as run-time adapters beside the unchanged weights (PEFT's unfused forward: quick to rescale or remove).
class LoraList {
public:
    LoraList();
    LoraList(const LoraList& other);
    ~LoraList();
    LoraList& operator=(const LoraList& other);
    void add(const LoraFile& lora, double scale, bool fused = true);
    int64_t size() const;

private:
    friend struct HandleAccess;
    void* impl_;
};

// torch.Generator("cpu").manual_seed(seed) with torch.randn(shape, generator=g, dtype=float32), bit for bit on
// any machine (see native/src/core/random.h). Copies of the handle share one stream (handing the generator
// from base to refiner keeps drawing where it stopped); clone() starts an independent copy of the state.
// Calls on one stream are serialised. Any 64-bit seed is accepted (only its low 32 bits reach mt19937, as in
// torch); negative Python seeds are their two's complement, which is what a Java long holds.
class Generator {
public:
    explicit Generator(uint64_t seed);
    Generator(const Generator& other);
    ~Generator();
    Generator& operator=(const Generator& other);

    Generator clone() const;
    void manual_seed(uint64_t seed);
    uint64_t initial_seed() const;
    // A new contiguous F32 CPU tensor; advances the stream.
    Tensor randn(const std::vector<int64_t>& shape);

private:
    void* impl_;  // std::shared_ptr<sdxl::api::GeneratorState>*
};

// ---- models. Built from a config and weight files (diffusers/transformers key names, bound strictly:
// a missing, extra or mis-shaped tensor is BAD_MODEL_FILE naming the key), or from deterministic random
// weights for shape and speed checks, on a device in a compute dtype (the CPU: F32; F16/BF16 files are
// widened). forward/decode/encode take inputs anywhere (moved and converted to the model's placement) and
// return F32 CPU tensors.

// CLIPTextModel / CLIPTextModelWithProjection.
class ClipTextModel {
public:
    ClipTextModel(const ClipTextModel& other);
    ~ClipTextModel();
    ClipTextModel& operator=(const ClipTextModel& other);
    // device: DEVICE_CPU | DEVICE_CUDA; dtype: the compute type (the CPU computes in DTYPE_F32 only).
    static ClipTextModel load(const ClipTextConfig& config, const std::vector<std::string>& weight_files,
                              int device = DEVICE_CPU, int dtype = DTYPE_F32);
    static ClipTextModel random(const ClipTextConfig& config, int64_t seed, int device = DEVICE_CPU,
                                int dtype = DTYPE_F32);
    // component: "text_encoder" (CLIP-L) or "text_encoder_2" (OpenCLIP-G) of a single-file checkpoint.
    static ClipTextModel load_single_file(const ClipTextConfig& config, const SingleFileCheckpoint& checkpoint,
                                          const std::string& component, int device = DEVICE_CPU,
                                          int dtype = DTYPE_F32);
    int device() const;
    int dtype() const;
    // input_ids [B, L] I64 -> [last_hidden_state, pooled (projected when with_projection),
    // hidden_states[0] (embeddings), ..., hidden_states[num_hidden_layers]].
    TensorList forward(const Tensor& input_ids) const;
    // The same with transformers' attention_mask [B, L] (F32 or I64; 0 = masked out), e.g. for compel's
    // down-weighting of a fragment.
    TensorList forward_masked(const Tensor& input_ids, const Tensor& attention_mask) const;
    // Textual inversion: the same with added_token_embeddings [n, hidden] (F32, any device; undefined = none)
    // appended to the token-embedding table as rows vocab_size .. vocab_size + n - 1 (diffusers'
    // load_textual_inversion after resize_token_embeddings), so input_ids may use those ids. The model's own
    // rows are untouched; pooling keeps the legacy "first highest id" rule, which then picks the first
    // embedding token above <|endoftext|> (as transformers does).
    TensorList forward_added(const Tensor& input_ids, const Tensor& attention_mask,
                             const Tensor& added_token_embeddings) const;
    // Applies `loras`, replacing the set applied before: fused entries into the weights (diffusers' fuse_lora; a
    // weight no fused LoRA touches any more gets its exact original values back), unfused ones as run-time adapters
    // of the layers (the weights untouched). component: "text_encoder" or "text_encoder_2" (which modules of the
    // files apply). BAD_MODEL_FILE listing modules that match no weight (nothing is changed then); a lenient file's
    // unmatched modules are skipped and returned. Waits for a forward pass that is running.
    std::vector<std::string> set_loras(const LoraList& loras, const std::string& component) const;
    // A copy of the weight the model computes with under a diffusers key, as F32 on the CPU.
    Tensor weight(const std::string& key) const;

private:
    ClipTextModel();
    void* impl_;
};

// UNet2DConditionModel (SDXL base or refiner).
class UNetModel {
public:
    UNetModel(const UNetModel& other);
    ~UNetModel();
    UNetModel& operator=(const UNetModel& other);
    static UNetModel load(const UNetConfig& config, const std::vector<std::string>& weight_files,
                          int device = DEVICE_CPU, int dtype = DTYPE_F32);
    static UNetModel random(const UNetConfig& config, int64_t seed, int device = DEVICE_CPU, int dtype = DTYPE_F32);
    static UNetModel load_single_file(const UNetConfig& config, const SingleFileCheckpoint& checkpoint,
                                      int device = DEVICE_CPU, int dtype = DTYPE_F32);
    int device() const;
    int dtype() const;
    // sample [B, C, H, W], timestep 0-d or [B], encoder_hidden_states [B, L, D], text_embeds [B, P],
    // time_ids [B, 6 | 5] -> noise prediction [B, C, H, W].
    Tensor forward(const Tensor& sample, const Tensor& timestep, const Tensor& encoder_hidden_states,
                   const Tensor& text_embeds, const Tensor& time_ids) const;
    // CUDA graphs: on CUDA each input shape's step is captured once (second call) and replayed after, one graph
    // launch instead of hundreds of kernel launches. Default: on for F16/BF16 (environment SDXL4J_CUDA_GRAPHS=0
    // turns it off, =1 on for F32 too). Shared by every handle of this model. No effect on the CPU.
    void set_cuda_graphs(bool enabled) const;
    bool cuda_graphs() const;
    // As ClipTextModel::set_loras for the files' "unet" modules (kohya's SGM names numbered from this config). A
    // generation's cross-attention keys/values and CUDA graphs made before a change are not reused after it.
    std::vector<std::string> set_loras(const LoraList& loras) const;
    Tensor weight(const std::string& key) const;

private:
    friend struct HandleAccess;
    UNetModel();
    void* impl_;
};

// AutoencoderKL. Tiling modes of decode/encode (see VaeModel::set_tiling).
enum VaeTilingMode { VAE_TILING_OFF = 0, VAE_TILING_AUTO = 1, VAE_TILING_ALWAYS = 2 };

class VaeModel {
public:
    VaeModel(const VaeModel& other);
    ~VaeModel();
    VaeModel& operator=(const VaeModel& other);
    // One weights file may be diffusers-named (encoder.down_blocks.*) or in the LDM / A1111 layout of standalone VAE
    // downloads (encoder.down.0.block.*, optionally under first_stage_model.; extra model_ema.* / loss.* training
    // entries are ignored), told apart by its keys and mapped through the single-file VAE key map. Several files
    // are the shards of a diffusers-named VAE.
    static VaeModel load(const VaeConfig& config, const std::vector<std::string>& weight_files,
                         int device = DEVICE_CPU, int dtype = DTYPE_F32);
    static VaeModel random(const VaeConfig& config, int64_t seed, int device = DEVICE_CPU, int dtype = DTYPE_F32);
    static VaeModel load_single_file(const VaeConfig& config, const SingleFileCheckpoint& checkpoint,
                                     int device = DEVICE_CPU, int dtype = DTYPE_F32);
    int device() const;
    int dtype() const;
    // z = latents / scaling_factor [B, 4, h, w] -> image [B, 3, 8h, 8w], with the model's tiling settings
    Tensor decode(const Tensor& z) const;
    // image [B, 3, H, W] in [-1, 1] -> [mean, logvar, std] of the latent distribution, likewise
    TensorList encode(const Tensor& image) const;

    // Tiling (diffusers 0.31 AutoencoderKL enable_tiling / tiled_decode / tiled_encode, for large images and
    // little memory). mode: VAE_TILING_OFF (one pass), VAE_TILING_AUTO (diffusers' use_tiling: tiled when the
    // latents are larger than tile_sample_size / 8 per side, or the image larger than tile_sample_size),
    // VAE_TILING_ALWAYS (diffusers' tiled_decode / tiled_encode: tiled whatever the size). tile_sample_size in
    // pixels (diffusers' tile_sample_min_size; 0 = the config's sample_size, 1024 for SDXL); overlap = diffusers'
    // tile_overlap_factor (0.25), in [0, 1). Tiles are decoded one at a time and blended linearly where they
    // overlap, so a tiled image differs a little from the one-pass image (as in diffusers).
    // set_tiling sets the default of decode()/encode() for every handle of this model (thread-safe).
    void set_tiling(int mode, int64_t tile_sample_size, double overlap);
    int tiling_mode() const;
    int64_t tile_sample_size() const;  // resolved: never 0
    double tile_overlap() const;
    // The same calls with the tiling given per call (the model's default untouched).
    Tensor decode_with(const Tensor& z, int mode, int64_t tile_sample_size, double overlap) const;
    TensorList encode_with(const Tensor& image, int mode, int64_t tile_sample_size, double overlap) const;
    // Out-of-memory fallback (on by default): a one-pass decode/encode that fails with OUT_OF_MEMORY empties
    // the CUDA cache and is retried tiled once, with the tile halved until the image needs several tiles; a
    // one-line warning goes to stderr. A tiled run that fails is not retried.
    void set_oom_fallback(bool enabled);
    bool oom_fallback() const;

private:
    VaeModel();
    void* impl_;
};

// Single diffusers blocks at any width, for checks against other implementations and for benchmarks.
// load() binds the tensors under `prefix` ("" = the file's root, else e.g. "down_blocks.1.attentions.0")
// strictly: a missing or mis-shaped tensor, or one under the prefix the block does not use, is BAD_MODEL_FILE
// naming the key; tensors outside the prefix are ignored, so a whole model's file can be given.

// Transformer2DModel (continuous input): keys norm, proj_in, transformer_blocks.{i}.{norm1, attn1, norm2,
// attn2, norm3, ff}, proj_out. GroupNorm eps 1e-6, LayerNorm eps 1e-5, GEGLU feed-forward (4x).
class Transformer2DBlock {
public:
    Transformer2DBlock(const Transformer2DBlock& other);
    ~Transformer2DBlock();
    Transformer2DBlock& operator=(const Transformer2DBlock& other);
    static Transformer2DBlock load(const std::vector<std::string>& weight_files, const std::string& prefix,
                                   int64_t channels, int64_t heads, int64_t head_dim, int64_t layers,
                                   int64_t context_dim, int64_t groups, bool use_linear_projection);
    static Transformer2DBlock random(int64_t channels, int64_t heads, int64_t head_dim, int64_t layers,
                                     int64_t context_dim, int64_t groups, bool use_linear_projection, int64_t seed);
    // x [N, channels, H, W], context [N, Lc, context_dim] -> [N, channels, H, W]
    Tensor forward(const Tensor& x, const Tensor& context) const;

private:
    Transformer2DBlock();
    void* impl_;
};

// ResnetBlock2D (time_embedding_norm "default", silu): keys norm1, conv1, time_emb_proj (temb_channels > 0),
// norm2, conv2, conv_shortcut (in != out).
class ResnetBlock {
public:
    ResnetBlock(const ResnetBlock& other);
    ~ResnetBlock();
    ResnetBlock& operator=(const ResnetBlock& other);
    static ResnetBlock load(const std::vector<std::string>& weight_files, const std::string& prefix, int64_t in,
                            int64_t out, int64_t temb_channels, int64_t groups, float eps);
    static ResnetBlock random(int64_t in, int64_t out, int64_t temb_channels, int64_t groups, float eps,
                              int64_t seed);
    // x [N, in, H, W], temb [N, temb_channels] (undefined when temb_channels is 0) -> [N, out, H, W]
    Tensor forward(const Tensor& x, const Tensor& temb) const;

private:
    ResnetBlock();
    void* impl_;
};

// ---- schedulers (diffusers' contract; see native/src/schedulers/scheduler.h). Stateful: copies of the
// handle share one scheduler.
class Scheduler {
public:
    Scheduler(const Scheduler& other);
    ~Scheduler();
    Scheduler& operator=(const Scheduler& other);
    static Scheduler create(const SchedulerConfig& config);
    static std::vector<std::string> supported_classes();

    void set_timesteps(int64_t num_inference_steps);
    std::vector<double> timesteps() const;
    std::vector<double> sigmas() const;  // empty for classes without sigmas
    double init_noise_sigma() const;
    int order() const;
    Tensor scale_model_input(const Tensor& sample, int64_t step_index);
    // -> [prev_sample, pred_original_sample (undefined when the class has none)]. generator may be null for
    // deterministic schedulers.
    TensorList step(const Tensor& model_output, int64_t step_index, const Tensor& sample, Generator* generator);
    Tensor add_noise(const Tensor& original, const Tensor& noise, int64_t step_index) const;

    // diffusers' base/refiner split on the current timesteps: how many the base runs with denoising_end,
    // and the index the refiner starts at with denoising_start (incl. the extra step of 2nd-order classes).
    int64_t steps_before_denoising_end(double denoising_end) const;
    int64_t begin_index_for_denoising_start(double denoising_start) const;

private:
    friend struct HandleAccess;
    Scheduler();
    void* impl_;
};

// ---- pipeline: diffusers' denoising loop (native/src/pipeline/denoise_loop.h), one step per call so the caller
// can report progress and cancel between steps. Holds the UNet, scheduler and generator it was given (shared,
// not copied): the generator keeps drawing from the same stream, as diffusers' generator object does.
class Denoiser {
public:
    Denoiser(const Denoiser& other);
    ~Denoiser();
    Denoiser& operator=(const Denoiser& other);
    // Runs scheduler.timesteps()[begin_index, end_index) from `latents` [B, C, h, w]. prompt_embeds [Bc, L, D],
    // text_embeds [Bc, P], time_ids [Bc, n] with Bc = B (no guidance) or 2B = [negative..., positive...]
    // (classifier-free guidance with guidance_scale, then guidance_rescale when > 0). generator may be null
    // for deterministic schedulers.
    static Denoiser create(const UNetModel& unet, const Scheduler& scheduler, const Tensor& latents,
                           const Tensor& prompt_embeds, const Tensor& text_embeds, const Tensor& time_ids,
                           int64_t begin_index, int64_t end_index, double guidance_scale, double guidance_rescale,
                           Generator* generator);
    bool done() const;
    bool guided() const;
    int64_t next_index() const;
    int64_t begin_index() const;
    int64_t end_index() const;
    double timestep(int64_t index) const;  // the scheduler's timesteps()[index]
    void step();                           // one step; CANCELLED after cancel()
    void run();                            // all remaining steps
    Tensor latents() const;                // the current latents (after the last step run)
    void cancel();                         // thread-safe
    bool cancelled() const;

private:
    Denoiser();
    void* impl_;
};

// uncond + scale * (text - uncond), then diffusers' rescale_noise_cfg when rescale > 0 (exposed for tests).
Tensor classifier_free_guidance(const Tensor& uncond, const Tensor& text, double scale, double rescale);

// ---- ops (see native/src/ops/ops.h for the exact semantics; undefined Tensor = absent)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding);
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor upsample_nearest2x(const Tensor& x);
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);
Tensor gelu_tanh(const Tensor& x);
Tensor quick_gelu(const Tensor& x);
Tensor geglu(const Tensor& x);
Tensor softmax(const Tensor& x);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                 float scale);
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float alpha, float beta);
Tensor concat(const TensorList& parts, int dim);
Tensor slice(const Tensor& x, int dim, int64_t start, int64_t length);
Tensor timestep_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float scale, float max_period);

// ---- exact scalar conversions (exposed for tests and tools)
uint16_t float_to_f16_bits(float value);
float f16_bits_to_float(uint16_t bits);
uint16_t float_to_bf16_bits(float value);
float bf16_bits_to_float(uint16_t bits);

// ---- runtime
std::string version();
int num_threads();
void set_num_threads(int n);
bool cuda_compiled();
bool cuda_available();
std::string cuda_status();
// The CUDA device this process runs on: 0 unless select_cuda_device chose another (before any CUDA work, or the
// same one again later; one device per process). Like torch.cuda.set_device, for a process given one GPU of many.
int cuda_device();
void select_cuda_device(int ordinal);
// Bytes held by tensors the core allocated on a device (memory-mapped weights not counted): a run that frees
// everything returns this to where it was.
int64_t live_allocated_bytes(int device);
// Per-op-family accounting of what ops ask of the hardware: attention, gemm, conv, norm, elementwise, copies;
// per family the calls, device calls (kernel launches + library calls + copies), FLOPs, bytes and, unless
// count_only, the time (CUDA events on DEVICE_CUDA, wall clock on the CPU). count_only: ops compute nothing and
// return uninitialised results, and models built with random weights meanwhile get no values, so a real-size
// step is counted in seconds on any machine (build the model inside one count-only profile, then profile the
// forward in a second one). One profile at a time, one forward pass at a time.
void profile_start(bool count_only, int device);
// Stops the profile and returns its table. bytes_per_element > 0 states bytes as elements x that size (e.g. 2
// to count an f16 step in a count-only F32 run), else each tensor's own dtype. predict_for: "" or a device
// ("h100" = H100 SXM 989 TFLOP/s dense f16/bf16 and 3.35 TB/s; "h200": 4.8 TB/s) to add the predicted time per
// family at stated fractions of those peaks.
std::string profile_stop(double bytes_per_element, const std::string& predict_for);
// Does nothing; lets benchmarks measure the cost of one JNI call.
void noop();
// Throws Error(code, message): lets tests check the C++ -> Java error path.
void raise_error(int code, const std::string& message);

}  // namespace api
}  // namespace sdxl
