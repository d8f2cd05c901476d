package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeTensorList;
import io.sdxl4j.nat.NativeVaeConfig;
import io.sdxl4j.nat.NativeVaeModel;
import io.sdxl4j.nat.StringVector;
import java.nio.file.Path;
import java.util.List;

/**
 * SDXL's VAE held by the native core (the pipelines load it in F32 when they run fp16: diffusers' force_upcast).
 *
 * <p>Tiling: {@link #enableTiling()} (diffusers' {@code enable_tiling()}) or a {@link VaeTiling} per call splits
 * large images into overlapping tiles blended linearly. Independently of it, a one-pass decode or encode that runs
 * out of device memory empties the CUDA cache and is retried tiled once (a one-line warning on stderr), with the
 * tile halved until the image needs several tiles; {@link #setOomFallback(boolean)} turns that off.
 */
public final class AutoencoderKL implements AutoCloseable {
    private NativeVaeModel handle;
    private final VaeConfig config;

    private AutoencoderKL(NativeVaeModel handle, VaeConfig config) {
        this.handle = handle;
        this.config = config;
    }

    public static AutoencoderKL load(Path dir, String variant) {
        return load(dir, variant, io.sdxl4j.Device.CPU, io.sdxl4j.DType.F32);
    }

    /**
     * Loads onto a device computing in {@code dtype} (CPU: F32 only; CUDA: F32, F16 or BF16). Inputs may live
     * anywhere; outputs come back as F32 CPU tensors.
     */
    public static AutoencoderKL load(Path dir, String variant, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        VaeConfig config = VaeConfig.read(dir.resolve("config.json"));
        List<Path> files = WeightFiles.resolve(dir, "diffusion_pytorch_model", variant);
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeVaeConfig c = config.toNative(); StringVector f = WeightFiles.toNative(files)) {
                return new AutoencoderKL(NativeVaeModel.load(c, f, device.code(), dtype.code()), config);
            }
        });
    }

    /** The weight files of a diffusers VAE folder for a variant (the plain files where it has none of that variant). */
    public static List<Path> weightFiles(Path dir, String variant) {
        return WeightFiles.resolve(dir, "diffusion_pytorch_model", variant);
    }

    /**
     * A VAE from weight files under {@code config}: one file given without its folder may be diffusers-named
     * ({@code diffusion_pytorch_model.safetensors}) or in the LDM / A1111 layout of VAE downloads (stabilityai's
     * {@code sdxl_vae.safetensors}, the fp16-fix VAE's: {@code encoder.down.0.block.0...}, optionally under
     * {@code first_stage_model.}, training entries {@code model_ema.*} / {@code loss.*} ignored); the native core
     * tells them apart by their keys and maps LDM names through the single-file key map. Several files are the shards
     * of a diffusers-named VAE. BAD_MODEL_FILE naming the key when a file does not fit that config, or naming the
     * file when it is no VAE.
     */
    public static AutoencoderKL load(VaeConfig config, List<Path> files, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeVaeConfig c = config.toNative(); StringVector f = WeightFiles.toNative(files)) {
                return new AutoencoderKL(NativeVaeModel.load(c, f, device.code(), dtype.code()), config);
            }
        });
    }

    /** The VAE of a single-file checkpoint (first_stage_model.*), under the diffusers {@code config}. */
    public static AutoencoderKL load(SingleFileCheckpoint checkpoint, VaeConfig config, io.sdxl4j.Device device,
                                     io.sdxl4j.DType dtype) {
        return Native.call(() -> {
            try (NativeVaeConfig c = config.toNative()) {
                return new AutoencoderKL(NativeVaeModel.load_single_file(c, checkpoint.handle(), device.code(),
                        dtype.code()), config);
            }
        });
    }

    public static AutoencoderKL random(VaeConfig config, long seed) {
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeVaeConfig c = config.toNative()) {
                return new AutoencoderKL(NativeVaeModel.random(c, seed), config);
            }
        });
    }

    public VaeConfig config() {
        return config;
    }

    private NativeVaeModel handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "AutoencoderKL is closed");
        }
        return handle;
    }

    /**
     * Decodes z = latents / scaling_factor [B, 4, h, w] to an image [B, 3, 8h, 8w] in about [-1, 1], with this
     * model's tiling ({@link #enableTiling()}).
     */
    public Tensor decode(Tensor z) {
        return Native.call(() -> Tensor.wrap(handle().decode(z.handle())));
    }

    /** {@link #decode(Tensor)} with the tiling given for this call. */
    public Tensor decode(Tensor z, VaeTiling tiling) {
        return Native.call(() -> Tensor.wrap(handle().decode_with(z.handle(), tiling.mode().code(),
                tiling.tileSampleSize(), tiling.overlap())));
    }

    /** Encodes an image [B, 3, H, W] in [-1, 1] into its latent distribution, with this model's tiling. */
    public LatentDistribution encode(Tensor image) {
        return Native.call(() -> distribution(handle().encode(image.handle())));
    }

    /** {@link #encode(Tensor)} with the tiling given for this call. */
    public LatentDistribution encode(Tensor image, VaeTiling tiling) {
        return Native.call(() -> distribution(handle().encode_with(image.handle(), tiling.mode().code(),
                tiling.tileSampleSize(), tiling.overlap())));
    }

    private static LatentDistribution distribution(NativeTensorList list) {
        try (NativeTensorList out = list) {
            return new LatentDistribution(Tensor.wrap(out.get(0)), Tensor.wrap(out.get(1)), Tensor.wrap(out.get(2)));
        }
    }

    /** diffusers' {@code enable_tiling()}: tiles of the config's sample_size, overlap 0.25. */
    public void enableTiling() {
        setTiling(VaeTiling.AUTO);
    }

    /** diffusers' {@code disable_tiling()}. */
    public void disableTiling() {
        setTiling(VaeTiling.OFF);
    }

    /** The tiling {@link #decode(Tensor)} and {@link #encode(Tensor)} use (shared by every holder of these weights). */
    public void setTiling(VaeTiling tiling) {
        Native.run(() -> handle().set_tiling(tiling.mode().code(), tiling.tileSampleSize(), tiling.overlap()));
    }

    /** The current tiling, its tile size resolved (never 0). */
    public VaeTiling tiling() {
        return Native.call(() -> {
            NativeVaeModel h = handle();
            return new VaeTiling(VaeTiling.Mode.values()[h.tiling_mode()], h.tile_sample_size(), h.tile_overlap());
        });
    }

    /** Whether an out-of-memory one-pass decode/encode is retried tiled (on by default). */
    public void setOomFallback(boolean enabled) {
        Native.run(() -> handle().set_oom_fallback(enabled));
    }

    @Override
    public void close() {
        NativeVaeModel h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
