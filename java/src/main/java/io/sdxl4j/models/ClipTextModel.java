package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeClipTextConfig;
import io.sdxl4j.nat.NativeClipTextModel;
import io.sdxl4j.nat.NativeTensorList;
import io.sdxl4j.nat.StringVector;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** A CLIP text encoder (SDXL's text_encoder or text_encoder_2) held by the native core, on the CPU in fp32. */
public final class ClipTextModel implements AutoCloseable {
    private NativeClipTextModel handle;
    private final ClipTextConfig config;
    // Textual inversion views (withAddedTokenEmbeddings): the model they read, and their rows [n, hidden].
    private final ClipTextModel parent;
    private final float[] addedRows;
    private final int addedCount;

    private ClipTextModel(NativeClipTextModel handle, ClipTextConfig config) {
        this.handle = handle;
        this.config = config;
        this.parent = null;
        this.addedRows = null;
        this.addedCount = 0;
    }

    private ClipTextModel(ClipTextModel parent, float[] rows, int count) {
        this.handle = null;
        this.config = parent.config;
        this.parent = parent;
        this.addedRows = rows;
        this.addedCount = count;
    }

    /**
     * A view of this model whose token-embedding table has {@code count} more rows (textual inversion, as diffusers'
     * {@code load_textual_inversion} after {@code resize_token_embeddings}): ids {@code vocab_size} ..
     * {@code vocab_size + count - 1} read {@code rows} ([count, hidden_size], row-major, copied). The weights are
     * shared, not copied; the view is usable while this model is open, and closing it does nothing.
     *
     * @throws SdxlException INVALID_ARGUMENT if rows is not count x hidden_size values
     */
    public ClipTextModel withAddedTokenEmbeddings(float[] rows, int count) {
        long want = (long) count * config.hiddenSize();
        if (rows == null || count <= 0 || rows.length != want) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "added token embeddings must be " + count + " x "
                    + config.hiddenSize() + " values, got " + (rows == null ? "null" : rows.length));
        }
        ClipTextModel base = parent != null ? parent : this;
        return new ClipTextModel(base, rows.clone(), count);
    }

    /** The number of token-embedding rows this model (or view) adds to the vocabulary; 0 for a plain model. */
    public int addedTokenCount() {
        return addedCount;
    }

    /** Loads {@code dir/config.json} and {@code dir/model[.variant].safetensors} (variant null for the default files). */
    public static ClipTextModel load(Path dir, String variant) {
        return load(dir, variant, io.sdxl4j.Device.CPU, io.sdxl4j.DType.F32);
    }

    /**
     * Loads onto a device computing in {@code dtype} (CPU: F32 only; CUDA: F32, F16 or BF16). Inputs may live
     * anywhere; outputs come back as F32 CPU tensors.
     */
    public static ClipTextModel load(Path dir, String variant, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        ClipTextConfig config = ClipTextConfig.read(dir.resolve("config.json"));
        List<Path> files = WeightFiles.resolve(dir, "model", variant);
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeClipTextConfig c = config.toNative(); StringVector f = WeightFiles.toNative(files)) {
                return new ClipTextModel(NativeClipTextModel.load(c, f, device.code(), dtype.code()), config);
            }
        });
    }

    /**
     * A text encoder of a single-file checkpoint: {@code component} "text_encoder" (CLIP-L) or "text_encoder_2"
     * (OpenCLIP-G, mapped to CLIPTextModelWithProjection), under the diffusers {@code config}.
     */
    public static ClipTextModel load(SingleFileCheckpoint checkpoint, String component, ClipTextConfig config,
                                     io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        return Native.call(() -> {
            try (NativeClipTextConfig c = config.toNative()) {
                return new ClipTextModel(NativeClipTextModel.load_single_file(c, checkpoint.handle(), component,
                        device.code(), dtype.code()), config);
            }
        });
    }

    /** A model with deterministic random weights (for shape, memory and speed checks). */
    public static ClipTextModel random(ClipTextConfig config, long seed) {
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeClipTextConfig c = config.toNative()) {
                return new ClipTextModel(NativeClipTextModel.random(c, seed), config);
            }
        });
    }

    public ClipTextConfig config() {
        return config;
    }

    /** Encodes token ids [B, L] (I64). The caller closes the output. */
    public ClipTextOutput forward(Tensor inputIds) {
        return forward(inputIds, null);
    }

    /**
     * Encodes token ids [B, L] (I64) with transformers' attention_mask [B, L] (F32 or I64; 0 = no query attends to
     * that position), as compel's down-weighting needs; null means no mask. The caller closes the output.
     */
    public ClipTextOutput forward(Tensor inputIds, Tensor attentionMask) {
        NativeClipTextModel h = parent != null ? parent.handle : handle;
        if (h == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "ClipTextModel is closed");
        }
        return Native.call(() -> {
            try (io.sdxl4j.nat.NativeTensor none = new io.sdxl4j.nat.NativeTensor();
                 Tensor rows = addedRows == null ? null : Tensor.of(addedRows, addedCount, config.hiddenSize());
                 NativeTensorList out = h.forward_added(inputIds.handle(),
                         attentionMask == null ? none : attentionMask.handle(), rows == null ? none : rows.handle())) {
                List<Tensor> hidden = new ArrayList<>();
                for (long i = 2; i < out.size(); i++) {
                    hidden.add(Tensor.wrap(out.get(i)));
                }
                return new ClipTextOutput(Tensor.wrap(out.get(0)), Tensor.wrap(out.get(1)), List.copyOf(hidden));
            }
        });
    }

    /**
     * As {@link UNet2DConditionModel#setLoras} for the files' modules of {@code component} ("text_encoder" for
     * CLIP-L, "text_encoder_2" for OpenCLIP-G).
     */
    public List<String> setLoras(List<LoraFile> loras, double[] scales, String component) {
        return setLoras(loras, scales, LoraFile.allFused(loras.size()), component);
    }

    /** As {@link UNet2DConditionModel#setLoras(List, double[], List)} for the modules of {@code component}. */
    public List<String> setLoras(List<LoraFile> loras, double[] scales, List<io.sdxl4j.LoraMode> modes,
            String component) {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "ClipTextModel is closed");
        }
        return Native.call(() -> {
            try (io.sdxl4j.nat.NativeLoraList l = LoraFile.toNative(loras, scales, modes)) {
                return LoraFile.strings(handle.set_loras(l, component));
            }
        });
    }

    /** A copy of the weight under a diffusers key ("text_model.encoder.layers.0.self_attn.q_proj.weight"), F32. */
    public Tensor weight(String key) {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "ClipTextModel is closed");
        }
        return Native.call(() -> Tensor.wrap(handle.weight(key)));
    }

    @Override
    public void close() {
        NativeClipTextModel h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
