package io.sdxl4j.models;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.DType;
import io.sdxl4j.Generator;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The weights of a cases/blocks case, rebuilt from its weight_manifest with the reference's weight_recipe
 * (the weights themselves are not stored):
 *
 * <pre>
 * r = torch.randn(p.shape, generator=torch.Generator('cpu').manual_seed(seed_of_key))
 * w = r / sqrt(p[0].numel())  if p.ndim >= 2         (fan-in)
 *     1 + 0.1 * r             if the key ends in "weight"   (norm scales)
 *     0.1 * r                 otherwise                     (biases)
 * p = w.half().float()                                      (fp16-exact values, used as fp32)
 * </pre>
 *
 * The arithmetic is torch's float32 ops with the Python scalars rounded to float first (a float32 tensor
 * op with a Python number computes in float32). {@link BlocksWeightRecipeTest} checks the result against
 * the manifest's sums and first values. To run a block on them, write them to a file, e.g.
 * {@code BlockWeights.write(c, dir.resolve("w.safetensors"))}, and load that with prefix "".
 */
final class BlockWeights {
    private BlockWeights() {}

    /** Every weight of the case, in manifest (state_dict) order, as F32 CPU tensors the caller closes. */
    static Map<String, Tensor> build(JsonNode testCase) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (JsonNode entry : testCase.get("weight_manifest")) {
                String key = entry.get("key").asText();
                out.put(key, build(key, shape(entry.get("shape")), entry.get("seed").asLong()));
            }
            return out;
        } catch (RuntimeException e) {
            out.values().forEach(Tensor::close);
            throw e;
        }
    }

    /** One weight of the recipe. */
    static Tensor build(String key, long[] shape, long seed) {
        float[] r;
        try (Generator g = Generator.seeded(seed); Tensor t = g.randn(shape)) {
            r = t.toFloatArray();
        }
        float[] w = new float[r.length];
        if (shape.length >= 2) {
            long fanIn = 1;
            for (int i = 1; i < shape.length; i++) {
                fanIn *= shape[i];
            }
            float denom = (float) Math.sqrt(fanIn);
            for (int i = 0; i < r.length; i++) {
                w[i] = r[i] / denom;
            }
        } else {
            float tenth = (float) 0.1;
            boolean scale = key.endsWith("weight");
            for (int i = 0; i < r.length; i++) {
                w[i] = scale ? tenth * r[i] + 1.0f : tenth * r[i];
            }
        }
        // .half().float(): round to nearest fp16 (ties to even), back to F32 exactly.
        try (Tensor f32 = Tensor.of(w, shape); Tensor f16 = f32.to(DType.F16)) {
            return f16.to(DType.F32);
        }
    }

    /** The case's weights written as one safetensors file (keys as in the diffusers state_dict). */
    static void write(JsonNode testCase, Path file) {
        Map<String, Tensor> weights = build(testCase);
        try {
            SafetensorsWriter.write(file, weights, Map.of());
        } finally {
            weights.values().forEach(Tensor::close);
        }
    }

    static long[] shape(JsonNode n) {
        long[] out = new long[n.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = n.get(i).asLong();
        }
        return out;
    }
}
