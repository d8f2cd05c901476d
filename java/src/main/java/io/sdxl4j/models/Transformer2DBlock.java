package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeTransformer2DBlock;
import io.sdxl4j.nat.StringVector;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * One diffusers Transformer2DModel (continuous input: GroupNorm, proj_in, BasicTransformerBlocks with self- and
 * cross-attention and a GEGLU feed-forward, proj_out, residual) held by the native core, on the CPU in fp32.
 * The UNet is built from these; this class runs one alone, at any width, for checks and benchmarks.
 */
public final class Transformer2DBlock implements AutoCloseable {
    /**
     * The block's shape, as diffusers' Transformer2DModel arguments: in_channels, num_attention_heads,
     * attention_head_dim, num_layers, cross_attention_dim, norm_num_groups, use_linear_projection.
     */
    public record Config(long channels, long heads, long headDim, long layers, long contextDim, long groups,
                         boolean useLinearProjection) {
        /** SDXL base's second level (down_blocks.1): 640 channels, 10 heads x 64, 2 layers, context 2048. */
        public static Config sdxl640(long layers) {
            return new Config(640, 10, 64, layers, 2048, 32, true);
        }
    }

    private NativeTransformer2DBlock handle;
    private final Config config;

    private Transformer2DBlock(NativeTransformer2DBlock handle, Config config) {
        this.handle = handle;
        this.config = config;
    }

    /**
     * Binds the tensors under {@code prefix} ("" for a file holding only this block, else e.g.
     * {@code "down_blocks.1.attentions.0"}) in the given .safetensors files, strictly: a missing, mis-shaped or
     * unused tensor under the prefix is BAD_MODEL_FILE naming its key. Tensors outside the prefix are ignored.
     */
    public static Transformer2DBlock load(List<Path> weightFiles, String prefix, Config config) {
        Objects.requireNonNull(prefix, "prefix");
        Sdxl4j.load();
        return Native.call(() -> {
            try (StringVector f = WeightFiles.toNative(weightFiles)) {
                return new Transformer2DBlock(NativeTransformer2DBlock.load(f, prefix, config.channels(), config.heads(),
                        config.headDim(), config.layers(), config.contextDim(), config.groups(),
                        config.useLinearProjection()), config);
            }
        });
    }

    /** A block with deterministic random weights (for shape and speed checks). */
    public static Transformer2DBlock random(Config config, long seed) {
        Sdxl4j.load();
        return Native.call(() -> new Transformer2DBlock(NativeTransformer2DBlock.random(config.channels(),
                config.heads(), config.headDim(), config.layers(), config.contextDim(), config.groups(),
                config.useLinearProjection(), seed), config));
    }

    public Config config() {
        return config;
    }

    /** x [N, channels, H, W], context [N, Lc, contextDim] -> a new tensor [N, channels, H, W] (the caller closes it). */
    public Tensor forward(Tensor x, Tensor context) {
        NativeTransformer2DBlock h = handle;
        if (h == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "Transformer2DBlock is closed");
        }
        return Native.call(() -> Tensor.wrap(h.forward(x.handle(), context.handle())));
    }

    /** Frees the weights (idempotent). */
    @Override
    public void close() {
        NativeTransformer2DBlock h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
