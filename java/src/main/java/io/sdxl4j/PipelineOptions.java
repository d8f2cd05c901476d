package io.sdxl4j;

import io.sdxl4j.models.VaeTiling;

/**
 * How a pipeline is loaded and where it runs (diffusers' {@code from_pretrained(variant=..., torch_dtype=...)},
 * {@code .to(device)}, {@code enable_model_cpu_offload()}, {@code add_watermarker}). Immutable.
 *
 * @param variant        weight-file variant ("fp16": {@code diffusion_pytorch_model.fp16.safetensors}), or null
 *                       for the plain files; falls back to the plain files where a component has no such variant
 * @param device         where the models run
 * @param dtype          the compute type; the CPU backend computes in F32 (fp16/bf16 weights are widened at load)
 * @param watermark      apply diffusers' invisible watermark to decoded images (diffusers' default when
 *                       invisible-watermark is installed); a request may override it
 * @param cpuOffload     model-level offload: each component moves to the device only while it runs (a no-op on
 *                       the CPU device)
 * @param vaeTiling      diffusers' {@code enable_vae_tiling()}: how the VAE tiles large images (null: off). Whatever
 *                       this says, a one-pass VAE decode/encode that runs out of device memory is retried tiled once
 * @param vae            another VAE instead of the model's (diffusers' {@code from_pretrained(..., vae=vae)}), e.g.
 *                       the fp16-fix VAE that runs in fp16: a diffusers VAE folder (config.json + weights, the
 *                       variant rule applies) or one diffusers-named .safetensors file (read with the model's VAE
 *                       config); null: the model's own
 */
public record PipelineOptions(String variant, Device device, DType dtype, boolean watermark, boolean cpuOffload,
                              VaeTiling vaeTiling, java.nio.file.Path vae) {
    public PipelineOptions {
        if (vaeTiling == null) {
            vaeTiling = VaeTiling.OFF;
        }
        if (device == null) {
            device = Device.CPU;
        }
        if (dtype == null) {
            dtype = DType.F32;
        }
        if (dtype == DType.I64) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "dtype must be F32, F16 or BF16");
        }
    }

    /** Without VAE tiling, with the model's VAE. */
    public PipelineOptions(String variant, Device device, DType dtype, boolean watermark, boolean cpuOffload) {
        this(variant, device, dtype, watermark, cpuOffload, VaeTiling.OFF, null);
    }

    /** With the model's VAE. */
    public PipelineOptions(String variant, Device device, DType dtype, boolean watermark, boolean cpuOffload,
                           VaeTiling vaeTiling) {
        this(variant, device, dtype, watermark, cpuOffload, vaeTiling, null);
    }

    /**
     * Another VAE (a diffusers VAE folder, or one .safetensors file, diffusers-named or in the A1111/LDM layout, read
     * with the model's VAE config), or null for the model's.
     */
    public PipelineOptions withVae(java.nio.file.Path v) {
        return new PipelineOptions(variant, device, dtype, watermark, cpuOffload, vaeTiling, v);
    }

    /** Plain weights, CPU, F32, watermark on, no offload, no VAE tiling. */
    public static PipelineOptions defaults() {
        return new PipelineOptions(null, Device.CPU, DType.F32, true, false);
    }

    public PipelineOptions withVariant(String v) {
        return new PipelineOptions(v, device, dtype, watermark, cpuOffload, vaeTiling, vae);
    }

    public PipelineOptions withDevice(Device d) {
        return new PipelineOptions(variant, d, dtype, watermark, cpuOffload, vaeTiling, vae);
    }

    public PipelineOptions withDtype(DType t) {
        return new PipelineOptions(variant, device, t, watermark, cpuOffload, vaeTiling, vae);
    }

    public PipelineOptions withWatermark(boolean w) {
        return new PipelineOptions(variant, device, dtype, w, cpuOffload, vaeTiling, vae);
    }

    /** diffusers' {@code enable_vae_tiling()} (true) / {@code disable_vae_tiling()} (false). */
    public PipelineOptions withVaeTiling(boolean enabled) {
        return withVaeTiling(enabled ? VaeTiling.AUTO : VaeTiling.OFF);
    }

    /** VAE tiling with a chosen tile size or mode. */
    public PipelineOptions withVaeTiling(VaeTiling t) {
        return new PipelineOptions(variant, device, dtype, watermark, cpuOffload, t, vae);
    }

    public PipelineOptions withCpuOffload(boolean o) {
        return new PipelineOptions(variant, device, dtype, watermark, o, vaeTiling, vae);
    }
}
