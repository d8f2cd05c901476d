package io.sdxl4j.models;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Typed, validating access to one config.json: every error names the file and the key, says what was found
 * and what is accepted. Missing keys take the library's constructor default, as diffusers/transformers do.
 */
final class ConfigJson {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final JsonNode root;

    private ConfigJson(Path file, JsonNode root) {
        this.file = file;
        this.root = root;
    }

    static ConfigJson read(Path file) {
        try {
            JsonNode root = JSON.readTree(Files.readAllBytes(file));
            if (root == null || !root.isObject()) {
                throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": a config must be a JSON object");
            }
            return new ConfigJson(file, root);
        } catch (NoSuchFileException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, file + " does not exist", e);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    Path file() {
        return file;
    }

    SdxlException bad(String key, String problem) {
        return new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": \"" + key + "\" " + problem);
    }

    SdxlException unsupported(String key, String problem) {
        return new SdxlException(ErrorCode.UNSUPPORTED, file + ": \"" + key + "\" " + problem);
    }

    private JsonNode node(String key) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? null : n;
    }

    boolean has(String key) {
        return node(key) != null;
    }

    boolean isArray(String key) {
        return has(key) && node(key).isArray();
    }

    long positiveLong(String key, long dflt) {
        JsonNode n = node(key);
        if (n == null) {
            return dflt;
        }
        if (!n.isIntegralNumber() || n.asLong() <= 0) {
            throw bad(key, "must be a positive integer, found " + n);
        }
        return n.asLong();
    }

    double number(String key, double dflt) {
        JsonNode n = node(key);
        if (n == null) {
            return dflt;
        }
        if (!n.isNumber() || !Double.isFinite(n.asDouble())) {
            throw bad(key, "must be a number, found " + n);
        }
        return n.asDouble();
    }

    boolean bool(String key, boolean dflt) {
        JsonNode n = node(key);
        if (n == null) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw bad(key, "must be true or false, found " + n);
        }
        return n.asBoolean();
    }

    String string(String key, String dflt) {
        JsonNode n = node(key);
        if (n == null) {
            return dflt;
        }
        if (!n.isTextual()) {
            throw bad(key, "must be a string, found " + n);
        }
        return n.asText();
    }

    /** A string that must be one of {@code allowed} (UNSUPPORTED otherwise). */
    String oneOf(String key, String dflt, Set<String> allowed) {
        String v = string(key, dflt);
        if (v != null && !allowed.contains(v)) {
            throw unsupported(key, "is \"" + v + "\"; sdxl4j supports " + allowed);
        }
        return v;
    }

    /** A key that sdxl4j does not implement: it must be absent, null, or equal to the default. */
    void requireDefault(String key, Object dflt) {
        JsonNode n = node(key);
        if (n == null) {
            return;
        }
        boolean same = dflt instanceof Number d && n.isNumber() ? n.asDouble() == d.doubleValue()
                : dflt instanceof Boolean b && n.isBoolean() ? n.asBoolean() == b
                : dflt instanceof String s && n.isTextual() && n.asText().equals(s);
        if (!same) {
            throw unsupported(key, "is " + n + "; sdxl4j supports only " + dflt);
        }
    }

    /** A list of positive integers, or a single integer repeated {@code count} times. */
    long[] longsOrScalar(String key, long[] dflt, int count) {
        JsonNode n = node(key);
        if (n == null) {
            return dflt;
        }
        if (n.isIntegralNumber()) {
            long[] out = new long[count];
            java.util.Arrays.fill(out, positiveLong(key, 0));
            return out;
        }
        return longs(key, dflt);
    }

    long[] longs(String key, long[] dflt) {
        JsonNode n = node(key);
        if (n == null) {
            return dflt;
        }
        if (!n.isArray() || n.isEmpty()) {
            throw bad(key, "must be a non-empty list of positive integers, found " + n);
        }
        long[] out = new long[n.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode e = n.get(i);
            if (!e.isIntegralNumber() || e.asLong() <= 0) {
                throw bad(key, "must be a list of positive integers, found " + n);
            }
            out[i] = e.asLong();
        }
        return out;
    }

    List<String> strings(String key, List<String> dflt) {
        JsonNode n = node(key);
        if (n == null) {
            return dflt;
        }
        if (!n.isArray() || n.isEmpty()) {
            throw bad(key, "must be a non-empty list of strings, found " + n);
        }
        List<String> out = new ArrayList<>();
        for (JsonNode e : n) {
            if (!e.isTextual()) {
                throw bad(key, "must be a list of strings, found " + n);
            }
            out.add(e.asText());
        }
        return List.copyOf(out);
    }

    /** Checks a length relation between two list-valued keys. */
    void sameLength(String key, int length, String otherKey, int otherLength) {
        if (length != otherLength) {
            throw bad(key, "has " + length + " entries but \"" + otherKey + "\" has " + otherLength);
        }
    }
}
