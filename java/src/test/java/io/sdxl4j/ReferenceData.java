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
            // Python's json writes -Infinity/NaN in some observations.
            ObjectMapper json = new ObjectMapper().enable(com.fasterxml.jackson.core.json.JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());
            JsonNode index = json.readTree(root().resolve("cases").resolve(group).resolve("index.json").toFile());
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

    /**
     * A float64 or int64 tensor of a reference file as doubles (timesteps and sigmas are stored as F64, which
     * the native reader does not load: the core has no float64). Read here with Jackson from the header.
     */
    public static double[] doubles(Path file, String name) {
        try (var ch = java.nio.channels.FileChannel.open(file)) {
            java.nio.ByteBuffer len = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            ch.read(len, 0);
            long n = len.getLong(0);
            java.nio.ByteBuffer head = java.nio.ByteBuffer.allocate((int) n);
            ch.read(head, 8);
            JsonNode info = new ObjectMapper().readTree(head.array()).get(name);
            if (info == null) {
                throw new IllegalArgumentException(file + " has no tensor " + name);
            }
            long begin = info.get("data_offsets").get(0).asLong();
            long end = info.get("data_offsets").get(1).asLong();
            java.nio.ByteBuffer data = java.nio.ByteBuffer.allocate((int) (end - begin)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            ch.read(data, 8 + n + begin);
            data.flip();
            String dtype = info.get("dtype").asText();
            double[] out = new double[(int) ((end - begin) / 8)];
            for (int i = 0; i < out.length; i++) {
                out[i] = switch (dtype) {
                    case "F64" -> data.getDouble();
                    case "I64" -> data.getLong();
                    default -> throw new IllegalArgumentException(name + " is " + dtype + ", expected F64 or I64");
                };
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
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
