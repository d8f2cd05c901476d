package io.sdxl4j.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sdxl4j.DType;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.Ops;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import io.sdxl4j.models.ClipTextConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Test oracle: transformers' CLIP text encoder up to hidden_states[-2] with an {@code attention_mask} (keys whose
 * mask is 0 are not attended to by any query), written independently in Java from the weight file and the
 * elementary Ops, to check the native {@link io.sdxl4j.models.ClipTextModel#forward(io.sdxl4j.Tensor,
 * io.sdxl4j.Tensor)} that compel's MASK down-weighting uses.
 */
final class MaskedClipText implements AutoCloseable {
    private final ClipTextConfig config;
    private final Map<String, Tensor> weights = new HashMap<>();

    private MaskedClipText(ClipTextConfig config) {
        this.config = config;
    }

    /** Opens the weights in {@code folder} ({@code model[.variant].safetensors} or a sharded index). */
    static MaskedClipText open(Path folder, String variant, ClipTextConfig config) {
        MaskedClipText m = new MaskedClipText(config);
        List<String> names = new ArrayList<>(List.of("text_model.embeddings.token_embedding.weight",
                "text_model.embeddings.position_embedding.weight"));
        // hidden_states[-2] is the output of layer num_hidden_layers - 2: the last layer is never needed
        for (long i = 0; i < config.numHiddenLayers() - 1; i++) {
            String p = "text_model.encoder.layers." + i + ".";
            for (String w : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                    "layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2")) {
                names.add(p + w + ".weight");
                names.add(p + w + ".bias");
            }
        }
        try {
            for (Path file : weightFiles(folder, variant)) {
                try (SafetensorsFile f = SafetensorsFile.open(file)) {
                    for (String n : names) {
                        if (!m.weights.containsKey(n) && f.contains(n)) {
                            m.weights.put(n, "F32".equals(f.dtypeName(n)) ? f.tensor(n) : f.tensorF32(n));
                        }
                    }
                }
            }
            for (String n : names) {
                if (!m.weights.containsKey(n)) {
                    throw new SdxlException(ErrorCode.BAD_MODEL_FILE, folder + ": weight " + n + " is missing");
                }
            }
            long h = config.hiddenSize();
            check(m, names.get(0), config.vocabSize(), h);
            check(m, names.get(1), config.maxPositionEmbeddings(), h);
            return m;
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    private static void check(MaskedClipText m, String name, long rows, long cols) {
        long[] s = m.weights.get(name).shape();
        if (!Arrays.equals(s, new long[] {rows, cols})) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, name + " has shape " + Arrays.toString(s) + ", expected ["
                    + rows + ", " + cols + "]");
        }
    }

    /** diffusers/transformers file naming: {@code model[.variant].safetensors} or its sharded index. */
    private static List<Path> weightFiles(Path dir, String variant) {
        String v = variant == null || variant.isEmpty() ? "" : "." + variant;
        Path single = dir.resolve("model" + v + ".safetensors");
        if (Files.isRegularFile(single)) {
            return List.of(single);
        }
        Path index = dir.resolve("model.safetensors.index" + v + ".json");
        if (!Files.isRegularFile(index)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, dir + ": no weights " + single.getFileName() + " or " + index.getFileName());
        }
        try {
            JsonNode map = new ObjectMapper().readTree(index.toFile()).get("weight_map");
            TreeSet<String> shards = new TreeSet<>();
            if (map != null) {
                for (Iterator<JsonNode> it = map.elements(); it.hasNext();) {
                    String s = it.next().asText();
                    if (s.contains("/") || s.contains("\\")) {
                        throw new SdxlException(ErrorCode.BAD_MODEL_FILE, index + ": bad shard name " + s);
                    }
                    shards.add(s);
                }
            }
            List<Path> out = new ArrayList<>();
            for (String s : shards) {
                out.add(dir.resolve(s));
            }
            return out;
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, index + ": " + e.getMessage(), e);
        }
    }

    private Tensor w(String name) {
        return weights.get(name);
    }

    /**
     * hidden_states[-2] for one sequence.
     *
     * @param ids     token ids, at most max_position_embeddings of them
     * @param keyMask one entry per id: 0 = no query attends to this position (transformers' attention_mask)
     * @return [ids.length * hidden] floats
     */
    float[] penultimate(long[] ids, float[] keyMask) {
        int n = ids.length;
        long c = config.hiddenSize();
        long heads = config.numAttentionHeads();
        long d = c / heads;
        if (n == 0 || n > config.maxPositionEmbeddings() || keyMask.length != n) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "masked CLIP text encoder: " + n + " ids, " + keyMask.length
                    + " mask entries (at most " + config.maxPositionEmbeddings() + ")");
        }
        List<Tensor> scope = new ArrayList<>();
        try {
            List<Tensor> rows = new ArrayList<>(n);
            Tensor tok = w("text_model.embeddings.token_embedding.weight");
            for (long id : ids) {
                if (id < 0 || id >= config.vocabSize()) {
                    throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "token id " + id + " is outside the vocabulary [0, "
                            + config.vocabSize() + ")");
                }
                rows.add(keep(scope, tok.narrow(0, id, 1)));
            }
            Tensor x = keep(scope, Ops.concat(rows, 0)); // [L, C]
            Tensor pos = keep(scope, w("text_model.embeddings.position_embedding.weight").narrow(0, 0, n));
            x = keep(scope, keep(scope, Ops.add(x, pos)).reshape(1, n, c)); // [1, L, C]
            Tensor mask = keep(scope, Tensor.of(keyMask, 1, n));
            float eps = (float) config.layerNormEps();
            for (long i = 0; i < config.numHiddenLayers() - 1; i++) {
                String p = "text_model.encoder.layers." + i + ".";
                Tensor h = keep(scope, Ops.layerNorm(x, w(p + "layer_norm1.weight"), w(p + "layer_norm1.bias"), eps));
                Tensor q = heads(scope, keep(scope, Ops.linear(h, w(p + "self_attn.q_proj.weight"), w(p + "self_attn.q_proj.bias"))), n, heads, d);
                Tensor k = heads(scope, keep(scope, Ops.linear(h, w(p + "self_attn.k_proj.weight"), w(p + "self_attn.k_proj.bias"))), n, heads, d);
                Tensor v = heads(scope, keep(scope, Ops.linear(h, w(p + "self_attn.v_proj.weight"), w(p + "self_attn.v_proj.bias"))), n, heads, d);
                Tensor a = keep(scope, Ops.attention(q, k, v, mask, true, (float) (1.0 / Math.sqrt(d)))); // [1, H, L, D]
                a = keep(scope, keep(scope, keep(scope, a.permute(0, 2, 1, 3)).contiguous()).reshape(1, n, c)); // [1, L, C]
                Tensor o = keep(scope, Ops.linear(a, w(p + "self_attn.out_proj.weight"), w(p + "self_attn.out_proj.bias")));
                x = keep(scope, Ops.add(x, o));
                h = keep(scope, Ops.layerNorm(x, w(p + "layer_norm2.weight"), w(p + "layer_norm2.bias"), eps));
                h = keep(scope, Ops.linear(h, w(p + "mlp.fc1.weight"), w(p + "mlp.fc1.bias")));
                h = keep(scope, config.hiddenAct().equals("quick_gelu") ? Ops.quickGelu(h) : Ops.gelu(h));
                h = keep(scope, Ops.linear(h, w(p + "mlp.fc2.weight"), w(p + "mlp.fc2.bias")));
                x = keep(scope, Ops.add(x, h)); // [1, L, C]
            }
            if (x.dtype() != DType.F32) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "masked CLIP text encoder: unexpected dtype " + x.dtype());
            }
            return x.toFloatArray();
        } finally {
            for (int i = scope.size() - 1; i >= 0; i--) {
                scope.get(i).close();
            }
        }
    }

    /** [1, L, C] -> [1, H, L, D] (a view). */
    private static Tensor heads(List<Tensor> scope, Tensor t, long n, long heads, long d) {
        return keep(scope, keep(scope, t.reshape(1, n, heads, d)).permute(0, 2, 1, 3));
    }

    private static Tensor keep(List<Tensor> scope, Tensor t) {
        scope.add(t);
        return t;
    }

    @Override
    public void close() {
        weights.values().forEach(Tensor::close);
        weights.clear();
    }
}
