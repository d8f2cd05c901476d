package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.Tensor;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The cases/blocks weight recipe rebuilt with our torch-compatible generator ({@link BlockWeights}): every
 * key of every case's weight_manifest must have its shape, the float64 sum (sum_f64) and the first four
 * values (first4, exactly). The values are fp16-exact (multiples of 2^-24 below 2^5), so their float64 sum
 * is exact in any order: the 1e-9 bound (relative; absolute for sums below 1) only absorbs the manifest's
 * decimal printing.
 */
class BlocksWeightRecipeTest {
    private static final double SUM_RTOL = 1e-9;

    @TestFactory
    Stream<DynamicTest> everyCase() {
        return ReferenceData.cases("blocks").stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        String name = c.get("name").asText();
        Map<String, Tensor> weights = BlockWeights.build(c);
        try {
            assertEquals(c.get("weight_manifest").size(), weights.size(), name + ": keys");
            double worstRel = 0;
            long params = 0;
            for (JsonNode entry : c.get("weight_manifest")) {
                String key = entry.get("key").asText();
                Tensor w = weights.get(key);
                assertArrayEquals(BlockWeights.shape(entry.get("shape")), w.shape(), name + " " + key + " shape");
                float[] v = w.toFloatArray();
                params += v.length;
                JsonNode first4 = entry.get("first4");
                for (int i = 0; i < first4.size(); i++) {
                    assertEquals(first4.get(i).asDouble(), (double) v[i], 0.0, name + " " + key + " first4[" + i + "]");
                }
                double sum = 0;
                for (float x : v) {
                    sum += x;
                }
                double expected = entry.get("sum_f64").asDouble();
                double rel = Math.abs(sum - expected) / Math.max(1.0, Math.abs(expected));
                worstRel = Math.max(worstRel, rel);
                assertTrue(rel <= SUM_RTOL, name + " " + key + ": sum " + sum + " vs " + expected + " (rel " + rel + ")");
            }
            System.out.printf("[reference] blocks %s: %d keys, %d params, worst sum_f64 rel diff %.3g, first4 exact%n",
                    name, weights.size(), params, worstRel);
        } finally {
            weights.values().forEach(Tensor::close);
        }
    }
}
