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

/** SDXL's VAE held by the native core, on the CPU in fp32 (diffusers' force_upcast: never plain fp16). */
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

    /** Decodes z = latents / scaling_factor [B, 4, h, w] to an image [B, 3, 8h, 8w] in about [-1, 1]. */
    public Tensor decode(Tensor z) {
        return Native.call(() -> Tensor.wrap(handle().decode(z.handle())));
    }

    /** Encodes an image [B, 3, H, W] in [-1, 1] into its latent distribution. */
    public LatentDistribution encode(Tensor image) {
        return Native.call(() -> {
            try (NativeTensorList out = handle().encode(image.handle())) {
                return new LatentDistribution(Tensor.wrap(out.get(0)), Tensor.wrap(out.get(1)), Tensor.wrap(out.get(2)));
            }
        });
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
