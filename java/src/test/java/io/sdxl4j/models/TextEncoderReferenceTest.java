package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * transformers' CLIPTextModel / CLIPTextModelWithProjection on the reference cases (cases/text_encoder): the
 * penultimate hidden state SDXL uses, the last hidden state and the pooled output, within 1e-4 absolute (the
 * reference's own fp32-vs-fp64 difference is up to 8.4e-6).
 */
class TextEncoderReferenceTest {
    private static final double ATOL = 1e-4;
    private static final Map<String, ClipTextModel> MODELS = new HashMap<>();

    private static ClipTextModel model(String name) {
        return MODELS.computeIfAbsent(name,
                n -> ClipTextModel.load(ReferenceData.root().resolve("models/tiny-sdxl-base").resolve(n), null));
    }

    @AfterAll
    static void close() {
        MODELS.values().forEach(ClipTextModel::close);
    }

    @TestFactory
    Stream<DynamicTest> everyCase() {
        return ReferenceData.cases("text_encoder").stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        ClipTextModel model = model(c.get("params").get("model").asText());
        try (SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile("text_encoder", c));
             Tensor ids = f.tensor("input_ids");
             ClipTextOutput out = model.forward(ids)) {
            check(c, "hidden_states_m2", f, out.penultimate());
            check(c, "last_hidden_state", f, out.lastHiddenState());
            check(c, "pooled", f, out.pooled());
            assertTrue(out.hiddenStates().size() == model.config().numHiddenLayers() + 1);
        }
    }

    static void check(JsonNode c, String name, SafetensorsFile f, Tensor actual) {
        try (Tensor expected = f.tensor(name)) {
            assertArrayEquals(expected.shape(), actual.shape(), name);
            double d = ReferenceData.maxAbsDiff(expected.toFloatArray(), actual.toFloatArray());
            System.out.printf("[reference] %s %s max|diff| = %.3g%n", c.get("name").asText(), name, d);
            assertTrue(d <= ATOL, c.get("name").asText() + " " + name + ": max |diff| " + d + " > " + ATOL);
        }
    }
}
