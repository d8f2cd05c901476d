package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.nat.NativeClipTextConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/** transformers' CLIPTextConfig, as SDXL's text_encoder (CLIPTextModel) and text_encoder_2 (…WithProjection) use it. */
public record ClipTextConfig(long vocabSize, long hiddenSize, long intermediateSize, long numHiddenLayers,
                             long numAttentionHeads, long maxPositionEmbeddings, String hiddenAct, double layerNormEps,
                             boolean withProjection, long projectionDim, long eosTokenId) {

    public ClipTextConfig {
        if (hiddenSize % numAttentionHeads != 0) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, "hidden_size " + hiddenSize
                    + " is not divisible by num_attention_heads " + numAttentionHeads);
        }
    }

    /** Reads a transformers config.json (unknown keys are ignored, as transformers does). */
    public static ClipTextConfig read(Path configJson) {
        ConfigJson c = ConfigJson.read(configJson);
        String modelType = c.string("model_type", "clip_text_model");
        if (!modelType.equals("clip_text_model")) {
            throw c.unsupported("model_type", "is \"" + modelType + "\"; expected \"clip_text_model\"");
        }
        List<String> arch = c.strings("architectures", List.of("CLIPTextModel"));
        boolean withProjection;
        if (arch.equals(List.of("CLIPTextModelWithProjection"))) {
            withProjection = true;
        } else if (arch.equals(List.of("CLIPTextModel"))) {
            withProjection = false;
        } else {
            throw c.unsupported("architectures", "is " + arch + "; expected [CLIPTextModel] or [CLIPTextModelWithProjection]");
        }
        long eos = c.has("eos_token_id") ? c.positiveLong("eos_token_id", 2) : 2;
        return new ClipTextConfig(
                c.positiveLong("vocab_size", 49408),
                c.positiveLong("hidden_size", 512),
                c.positiveLong("intermediate_size", 2048),
                c.positiveLong("num_hidden_layers", 12),
                c.positiveLong("num_attention_heads", 8),
                c.positiveLong("max_position_embeddings", 77),
                c.oneOf("hidden_act", "quick_gelu", Set.of("quick_gelu", "gelu")),
                c.number("layer_norm_eps", 1e-5),
                withProjection,
                c.positiveLong("projection_dim", 512),
                eos);
    }

    /** The native struct (the caller closes it). */
    public NativeClipTextConfig toNative() {
        NativeClipTextConfig n = new NativeClipTextConfig();
        n.vocab_size(vocabSize).hidden_size(hiddenSize).intermediate_size(intermediateSize)
                .num_hidden_layers(numHiddenLayers).num_attention_heads(numAttentionHeads)
                .max_position_embeddings(maxPositionEmbeddings).hidden_act(new org.bytedeco.javacpp.BytePointer(hiddenAct)).layer_norm_eps((float) layerNormEps)
                .with_projection(withProjection).projection_dim(projectionDim).eos_token_id(eosTokenId);
        return n;
    }
}
