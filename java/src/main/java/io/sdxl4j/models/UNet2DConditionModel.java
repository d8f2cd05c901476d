package io.sdxl4j.models;

import io.sdxl4j.DType;
import io.sdxl4j.Device;
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

/** SDXL's UNet (base or refiner) held by the native core, on the CPU (F32) or a CUDA device (F32, F16 or BF16). */
public final class UNet2DConditionModel implements AutoCloseable {
    private NativeUNetModel handle;
    private final UNetConfig config;

    private UNet2DConditionModel(NativeUNetModel handle, UNetConfig config) {
        this.handle = handle;
        this.config = config;
    }

    /** Loads {@code dir/config.json} and {@code dir/diffusion_pytorch_model[.variant].safetensors} (or its shards). */
    public static UNet2DConditionModel load(Path dir, String variant) {
        return load(dir, variant, Device.CPU, DType.F32);
    }

    /**
     * Loads onto a device computing in {@code dtype} (CPU: F32 only; CUDA: F32, F16 or BF16). Inputs may live
     * anywhere; outputs come back as F32 CPU tensors.
     */
    public static UNet2DConditionModel load(Path dir, String variant, Device device, DType dtype) {
        UNetConfig config = UNetConfig.read(dir.resolve("config.json"));
        List<Path> files = WeightFiles.resolve(dir, "diffusion_pytorch_model", variant);
        checkPlacement(device, dtype);
        return Native.call(() -> {
            try (NativeUNetConfig c = config.toNative(); StringVector f = WeightFiles.toNative(files)) {
                return new UNet2DConditionModel(NativeUNetModel.load(c, f, device.code(), dtype.code()), config);
            }
        });
    }

    /** The UNet of a single-file checkpoint (model.diffusion_model.*, SGM numbering), under the diffusers {@code config}. */
    public static UNet2DConditionModel load(SingleFileCheckpoint checkpoint, UNetConfig config, Device device,
                                            DType dtype) {
        checkPlacement(device, dtype);
        return Native.call(() -> {
            try (NativeUNetConfig c = config.toNative()) {
                return new UNet2DConditionModel(NativeUNetModel.load_single_file(c, checkpoint.handle(), device.code(),
                        dtype.code()), config);
            }
        });
    }

    /** A model with deterministic random weights on the CPU in F32 (for shape, memory and speed checks). */
    public static UNet2DConditionModel random(UNetConfig config, long seed) {
        return random(config, seed, Device.CPU, DType.F32);
    }

    /**
     * A model with deterministic random weights made on {@code device} computing in {@code dtype} (CPU: F32 only;
     * CUDA: F32, F16 or BF16), for shape, memory and speed checks; with {@link UNetConfig#sdxlBase()}, the
     * real-size SDXL base UNet without its weight files. The same seed gives the same weights as the native
     * {@code UNetModel::random} (and so as {@code sdxl_unet_perf}).
     *
     * @throws SdxlException DEVICE_ERROR if CUDA is asked for and unavailable; UNSUPPORTED for F16/BF16 on the CPU
     */
    public static UNet2DConditionModel random(UNetConfig config, long seed, Device device, DType dtype) {
        checkPlacement(device, dtype);
        return Native.call(() -> {
            try (NativeUNetConfig c = config.toNative()) {
                return new UNet2DConditionModel(NativeUNetModel.random(c, seed, device.code(), dtype.code()), config);
            }
        });
    }

    /** Fails early and clearly (before any weights are made) where the native core could not place the model. */
    private static void checkPlacement(Device device, DType dtype) {
        Sdxl4j.load();
        if (device == Device.CUDA && !Sdxl4j.cudaAvailable()) {
            throw new SdxlException(ErrorCode.DEVICE_ERROR, "CUDA requested but unavailable: " + Sdxl4j.cudaStatus()
                    + (Sdxl4j.cudaCompiled() ? "" : " (this build has no CUDA backend)") + "; use Device.CPU");
        }
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "a model computes in F32, F16 or BF16, not " + dtype);
        }
        if (device == Device.CPU && dtype != DType.F32) {
            throw new SdxlException(ErrorCode.UNSUPPORTED, "the CPU backend computes in F32 (fp16/bf16 weight files are "
                    + "widened when loaded); " + dtype + " needs CUDA");
        }
    }

    /** Where the weights live. */
    public Device device() {
        int code = Native.call(() -> handle().device());
        for (Device d : Device.values()) {
            if (d.code() == code) {
                return d;
            }
        }
        throw new SdxlException(ErrorCode.INTERNAL, "native core returned unknown device code " + code);
    }

    /** The compute dtype (F32, F16 or BF16); outputs are F32 whatever it is. */
    public DType dtype() {
        int code = Native.call(() -> handle().dtype());
        for (DType t : DType.values()) {
            if (t.code() == code) {
                return t;
            }
        }
        throw new SdxlException(ErrorCode.INTERNAL, "native core returned unknown dtype code " + code);
    }

    public UNetConfig config() {
        return config;
    }

    /** The native handle, for calls into io.sdxl4j.nat (e.g. the pipeline's denoiser). Internal. */
    public NativeUNetModel handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "UNet2DConditionModel is closed");
        }
        return handle;
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
    public Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor textEmbeds, Tensor timeIds) {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "UNet2DConditionModel is closed");
        }
        return Native.call(() -> Tensor.wrap(handle.forward(sample.handle(), timestep.handle(),
                encoderHiddenStates.handle(), textEmbeds.handle(), timeIds.handle())));
    }

    /**
     * Fuses {@code loras} with their {@code scales} into the weights (diffusers' fuse_lora), replacing the set applied
     * before; an empty list restores the original weights exactly.
     *
     * @return the modules of lenient files that matched no weight (skipped)
     * @throws SdxlException BAD_MODEL_FILE listing modules that match no weight (nothing is changed then)
     */
    public List<String> setLoras(List<LoraFile> loras, double[] scales) {
        return setLoras(loras, scales, LoraFile.allFused(loras.size()));
    }

    /**
     * Applies {@code loras} with their {@code scales}, each fused into the weights or as run-time adapters beside them
     * ({@link io.sdxl4j.LoraMode}), replacing the set applied before. Waits for a forward pass that is running; the
     * keys/values a generation keeps across steps and CUDA graphs made before are not reused after.
     */
    public List<String> setLoras(List<LoraFile> loras, double[] scales, List<io.sdxl4j.LoraMode> modes) {
        return Native.call(() -> {
            try (io.sdxl4j.nat.NativeLoraList l = LoraFile.toNative(loras, scales, modes)) {
                return LoraFile.strings(handle().set_loras(l));
            }
        });
    }

    /** A copy of the weight the model computes with under a diffusers key (e.g. "conv_in.weight"), F32 on the CPU. */
    public Tensor weight(String key) {
        return Native.call(() -> Tensor.wrap(handle().weight(key)));
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
