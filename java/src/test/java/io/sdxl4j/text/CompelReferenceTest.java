package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * compel 2.0.3 on SDXL's two text encoders (cases/compel): every case of the group's index.json, dispatched on
 * its params ({@code prompt}, or {@code prompt_a} + {@code prompt_b} padded to the same length; and
 * {@code truncate_long_prompts}). Conditioning and pooled within 1e-4 absolute.
 */
class CompelReferenceTest {
    private static final double ATOL = 1e-4;
    private static final String GROUP = "compel";
    private static Compel truncating;
    private static Compel untruncated;

    private static synchronized Compel compel(boolean truncate) {
        Path base = ReferenceData.root().resolve("models/tiny-sdxl-base");
        if (truncate) {
            if (truncating == null) {
                truncating = Compel.load(base, null, true);
            }
            return truncating;
        }
        if (untruncated == null) {
            untruncated = Compel.load(base, null, false);
        }
        return untruncated;
    }

    @AfterAll
    static void close() {
        if (truncating != null) {
            truncating.close();
        }
        if (untruncated != null) {
            untruncated.close();
        }
    }

    @TestFactory
    Stream<DynamicTest> everyCase() {
        List<JsonNode> cases = ReferenceData.cases(GROUP);
        return cases.stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        JsonNode params = c.get("params");
        Compel compel = compel(params.get("truncate_long_prompts").asBoolean());
        try (SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile(GROUP, c))) {
            if (params.has("prompt")) {
                try (Compel.Output out = compel.encode(params.get("prompt").asText())) {
                    check(c, "conditioning", f, out.conditioning());
                    check(c, "pooled", f, out.pooled());
                }
            } else {
                assertTrue(params.has("prompt_a") && params.has("prompt_b"), c.get("name").asText() + ": unknown params " + params);
                try (Compel.Output a = compel.encode(params.get("prompt_a").asText());
                     Compel.Output b = compel.encode(params.get("prompt_b").asText())) {
                    List<Tensor> padded = compel.padToSameLength(List.of(a.conditioning(), b.conditioning()));
                    try {
                        assertEquals(2, padded.size());
                        check(c, "cond_a", f, padded.get(0));
                        check(c, "cond_b", f, padded.get(1));
                        check(c, "pooled_a", f, a.pooled());
                        check(c, "pooled_b", f, b.pooled());
                    } finally {
                        padded.forEach(Tensor::close);
                    }
                }
            }
        }
    }

    private static void check(JsonNode c, String name, SafetensorsFile f, Tensor actual) {
        try (Tensor expected = f.tensor(name)) {
            assertArrayEquals(expected.shape(), actual.shape(), c.get("name").asText() + " " + name + " shape");
            double d = ReferenceData.maxAbsDiff(expected.toFloatArray(), actual.toFloatArray());
            System.out.printf("[reference] compel %s %s max|diff| = %.3g%n", c.get("name").asText(), name, d);
            assertTrue(d <= ATOL, c.get("name").asText() + " " + name + ": max |diff| " + d + " > " + ATOL);
        }
    }
}
