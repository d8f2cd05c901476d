package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeResnetBlock;
import io.sdxl4j.nat.NativeTensor;
import io.sdxl4j.nat.StringVector;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * One diffusers ResnetBlock2D (GroupNorm, SiLU, 3x3 conv, time-embedding projection, GroupNorm, SiLU, 3x3 conv,
 * 1x1 shortcut when the widths differ) held by the native core, on the CPU in fp32, for checks and benchmarks.
 */
public final class ResnetBlock implements AutoCloseable {
    /**
     * diffusers' ResnetBlock2D arguments: in_channels, out_channels, temb_channels (0: no time embedding, as in
     * the VAE), groups, eps (SDXL's UNet 1e-5, its VAE 1e-6).
     */
    public record Config(long in, long out, long tembChannels, long groups, float eps) {}

    private NativeResnetBlock handle;
    private final Config config;

    private ResnetBlock(NativeResnetBlock handle, Config config) {
        this.handle = handle;
        this.config = config;
    }

    /**
     * Binds the tensors under {@code prefix} ("" for a file holding only this block, else e.g.
     * {@code "down_blocks.1.resnets.0"}) strictly: a missing, mis-shaped or unused tensor under the prefix is
     * BAD_MODEL_FILE naming its key. Tensors outside the prefix are ignored.
     */
    public static ResnetBlock load(List<Path> weightFiles, String prefix, Config config) {
        Objects.requireNonNull(prefix, "prefix");
        Sdxl4j.load();
        return Native.call(() -> {
            try (StringVector f = WeightFiles.toNative(weightFiles)) {
                return new ResnetBlock(NativeResnetBlock.load(f, prefix, config.in(), config.out(),
                        config.tembChannels(), config.groups(), config.eps()), config);
            }
        });
    }

    /** A block with deterministic random weights (for shape and speed checks). */
    public static ResnetBlock random(Config config, long seed) {
        Sdxl4j.load();
        return Native.call(() -> new ResnetBlock(NativeResnetBlock.random(config.in(), config.out(),
                config.tembChannels(), config.groups(), config.eps(), seed), config));
    }

    public Config config() {
        return config;
    }

    /**
     * x [N, in, H, W], temb [N, tembChannels] (null when tembChannels is 0) -> a new tensor [N, out, H, W]
     * (the caller closes it).
     */
    public Tensor forward(Tensor x, Tensor temb) {
        NativeResnetBlock h = handle;
        if (h == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "ResnetBlock is closed");
        }
        return Native.call(() -> {
            if (temb != null) {
                return Tensor.wrap(h.forward(x.handle(), temb.handle()));
            }
            try (NativeTensor none = new NativeTensor()) {
                return Tensor.wrap(h.forward(x.handle(), none));
            }
        });
    }

    /** Frees the weights (idempotent). */
    @Override
    public void close() {
        NativeResnetBlock h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
