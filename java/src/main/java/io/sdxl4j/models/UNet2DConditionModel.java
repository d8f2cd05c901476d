package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeUNetConfig;
import io.sdxl4j.nat.NativeUNetModel;
import io.sdxl4j.nat.StringVector;
import java.nio.file.Path;
import java.util.List;

/** SDXL's UNet (base or refiner) held by the native core, on the CPU in fp32. */
public final class UNet2DConditionModel implements AutoCloseable {
    private NativeUNetModel handle;
    private final UNetConfig config;

    private UNet2DConditionModel(NativeUNetModel handle, UNetConfig config) {
        this.handle = handle;
        this.config = config;
    }

    /** Loads {@code dir/config.json} and {@code dir/diffusion_pytorch_model[.variant].safetensors} (or its shards). */
    public static UNet2DConditionModel load(Path dir, String variant) {
        return load(dir, variant, io.sdxl4j.Device.CPU, io.sdxl4j.DType.F32);
    }

    /**
     * Loads onto a device computing in {@code dtype} (CPU: F32 only; CUDA: F32, F16 or BF16). Inputs may live
     * anywhere; outputs come back as F32 CPU tensors.
     */
    public static UNet2DConditionModel load(Path dir, String variant, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        UNetConfig config = UNetConfig.read(dir.resolve("config.json"));
        List<Path> files = WeightFiles.resolve(dir, "diffusion_pytorch_model", variant);
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeUNetConfig c = config.toNative(); StringVector f = WeightFiles.toNative(files)) {
                return new UNet2DConditionModel(NativeUNetModel.load(c, f, device.code(), dtype.code()), config);
            }
        });
    }

    /** A model with deterministic random weights (for shape, memory and speed checks). */
    public static UNet2DConditionModel random(UNetConfig config, long seed) {
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeUNetConfig c = config.toNative()) {
                return new UNet2DConditionModel(NativeUNetModel.random(c, seed), config);
            }
        });
    }

    public UNetConfig config() {
        return config;
    }

    /**
     * One noise prediction.
     *
     * @param sample              latents [B, C, H, W]
     * @param timestep            0-d or [B], F32 or I64
     * @param encoderHiddenStates prompt embeddings [B, 77, cross_attention_dim]
     * @param textEmbeds          pooled prompt embedding [B, P]
     * @param timeIds             [B, 6] (base: original size, crop, target size) or [B, 5] (refiner: ..., aesthetic score)
     */
    /** The native handle, for calls into io.sdxl4j.nat (e.g. the pipeline's denoiser). Internal. */
    public NativeUNetModel handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "UNet2DConditionModel is closed");
        }
        return handle;
    }

    public Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor textEmbeds, Tensor timeIds) {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "UNet2DConditionModel is closed");
        }
        return Native.call(() -> Tensor.wrap(handle.forward(sample.handle(), timestep.handle(),
                encoderHiddenStates.handle(), textEmbeds.handle(), timeIds.handle())));
    }

    @Override
    public void close() {
        NativeUNetModel h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
