package io.sdxl4j;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The reference data root (system property {@code sdxl4j.reference}, default the project's copy in
 * src/test/resources/reference) and its case groups, each listed by the group's index.json.
 */
public final class ReferenceData {
    private ReferenceData() {}

    public static Path root() {
        return Path.of(System.getProperty("sdxl4j.reference", "src/test/resources/reference"));
    }

    /** Every case of a group, as its index.json lists them. */
    public static List<JsonNode> cases(String group) {
        try {
            JsonNode index = new ObjectMapper().readTree(root().resolve("cases").resolve(group).resolve("index.json").toFile());
            List<JsonNode> out = new ArrayList<>();
            index.get("cases").forEach(out::add);
            if (out.isEmpty()) {
                throw new IllegalStateException("no cases in " + group + "/index.json");
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static Path caseFile(String group, JsonNode testCase) {
        return root().resolve("cases").resolve(group).resolve(testCase.get("file").asText());
    }

    /** Largest |a - b|, after checking the lengths agree. */
    public static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new AssertionError("length " + a.length + " vs " + b.length);
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs((double) a[i] - b[i]);
            if (Double.isNaN(d)) {
                return Double.NaN;
            }
            m = Math.max(m, d);
        }
        return m;
    }
}
