package io.sdxl4j.server;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The fields of a JSON request body, read with checks that name the field at fault: a wrong type, a number out of
 * range, NaN or infinity, a string too long. Every failure is an {@link ApiException} 400.
 */
final class Fields {
    /**
     * NaN and Infinity tokens parse (as numbers) so that the field check can name the field that holds them; a
     * repeated key is refused rather than silently taking the last value.
     */
    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .build();

    private final ObjectNode body;
    private final String prefix;

    private Fields(ObjectNode body, String prefix) {
        this.body = body;
        this.prefix = prefix;
    }

    /** Parses a request body that must be one JSON object. */
    static Fields parse(byte[] bytes) {
        if (bytes.length == 0) {
            throw ApiException.badRequest(null, "the request body is empty; send a JSON object");
        }
        JsonNode node;
        try {
            node = JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw ApiException.badRequest(null, "the request body is not valid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ", column "
                    + e.getLocation().getColumnNr() + ")"));
        } catch (IOException e) {
            throw ApiException.badRequest(null, "the request body cannot be read: " + e.getMessage());
        }
        if (node == null || !node.isObject()) {
            throw ApiException.badRequest(null, "the request body must be a JSON object");
        }
        return new Fields((ObjectNode) node, "");
    }

    static Fields of(ObjectNode body) {
        return new Fields(body, "");
    }

    ObjectNode node() {
        return body;
    }

    /** The nested object {@code name} (absent or null: an empty one); field names in messages get its prefix. */
    Fields object(String name) {
        JsonNode n = body.get(name);
        if (n == null || n.isNull()) {
            return new Fields(JSON.createObjectNode(), prefix + name + ".");
        }
        if (!n.isObject()) {
            throw bad(name, "must be a JSON object, got " + kind(n));
        }
        return new Fields((ObjectNode) n, prefix + name + ".");
    }

    /** The full name of a field of this object, as messages show it. */
    String name(String field) {
        return prefix + field;
    }

    /** Present and not null. */
    boolean has(String name) {
        JsonNode n = body.get(name);
        return n != null && !n.isNull();
    }

    List<String> names() {
        List<String> out = new ArrayList<>();
        body.fieldNames().forEachRemaining(out::add);
        return out;
    }

    String string(String name, String fallback, int maxLength) {
        JsonNode n = body.get(name);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isTextual()) {
            throw bad(name, "must be a string, got " + kind(n));
        }
        String s = n.textValue();
        if (s.length() > maxLength) {
            throw bad(name, "is " + s.length() + " characters long; at most " + maxLength + " are accepted");
        }
        if (s.indexOf('\0') >= 0) {
            throw bad(name, "must not contain NUL characters");
        }
        return s;
    }

    /** A whole number (a JSON number with no fraction, such as 20 or 20.0) in [min, max]. */
    int integer(String name, int fallback, int min, int max) {
        JsonNode n = body.get(name);
        if (n == null || n.isNull()) {
            return fallback;
        }
        long v = whole(name, n);
        if (v < min || v > max) {
            throw bad(name, "must be in [" + min + ", " + max + "], got " + v);
        }
        return (int) v;
    }

    /** A whole number within a signed 64-bit long, or null when absent. */
    Long longOrNull(String name) {
        JsonNode n = body.get(name);
        return n == null || n.isNull() ? null : whole(name, n);
    }

    private long whole(String name, JsonNode n) {
        if (!n.isNumber()) {
            throw bad(name, "must be a whole number, got " + kind(n));
        }
        if (n.isIntegralNumber()) {
            if (!n.canConvertToLong()) {
                throw bad(name, "is out of range: " + n.asText());
            }
            return n.longValue();
        }
        double d = n.doubleValue();
        if (!Double.isFinite(d)) {
            throw bad(name, "must be a finite number, got " + d);
        }
        if (d != Math.rint(d) || Math.abs(d) > 9.0e15) {
            throw bad(name, "must be a whole number, got " + n.asText());
        }
        return (long) d;
    }

    /** A finite number in [min, max]. */
    double number(String name, double fallback, double min, double max) {
        JsonNode n = body.get(name);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isNumber()) {
            throw bad(name, "must be a number, got " + kind(n));
        }
        double d = n.doubleValue();
        if (!Double.isFinite(d)) {
            throw bad(name, "must be a finite number, got " + n.asText());
        }
        if (d < min || d > max) {
            throw bad(name, "must be in [" + fmt(min) + ", " + fmt(max) + "], got " + n.asText());
        }
        return d;
    }

    /** A finite number in [min, max], or null when absent. */
    Double numberOrNull(String name, double min, double max) {
        return has(name) ? number(name, 0, min, max) : null;
    }

    boolean bool(String name, boolean fallback) {
        JsonNode n = body.get(name);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isBoolean()) {
            throw bad(name, "must be true or false, got " + kind(n));
        }
        return n.booleanValue();
    }

    /** A list of strings (absent or null: an empty list), at most {@code maxItems} of at most {@code maxLength} each. */
    List<String> strings(String name, int maxItems, int maxLength) {
        JsonNode n = body.get(name);
        List<String> out = new ArrayList<>();
        if (n == null || n.isNull()) {
            return out;
        }
        if (!n.isArray()) {
            throw bad(name, "must be a list of strings, got " + kind(n));
        }
        if (n.size() > maxItems) {
            throw bad(name, "has " + n.size() + " items; at most " + maxItems + " are accepted");
        }
        for (int i = 0; i < n.size(); i++) {
            JsonNode item = n.get(i);
            if (!item.isTextual()) {
                throw bad(name + "[" + i + "]", "must be a string, got " + kind(item));
            }
            if (item.textValue().length() > maxLength) {
                throw bad(name + "[" + i + "]", "is " + item.textValue().length() + " characters long; at most "
                        + maxLength + " are accepted");
            }
            out.add(item.textValue());
        }
        return out;
    }

    JsonNode raw(String name) {
        return body.get(name);
    }

    ApiException bad(String name, String message) {
        return ApiException.badRequest(prefix + name, message);
    }

    static String kind(JsonNode n) {
        if (n.isTextual()) {
            return "a string";
        }
        if (n.isNumber()) {
            return "the number " + n.asText();
        }
        if (n.isBoolean()) {
            return n.asText();
        }
        if (n.isArray()) {
            return "a list";
        }
        if (n.isObject()) {
            return "an object";
        }
        return n.getNodeType().toString().toLowerCase(java.util.Locale.ROOT);
    }

    private static String fmt(double d) {
        return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
    }
}
