package io.sdxl4j;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Test-side .safetensors reading and writing as raw bytes (dtype, shape, little-endian data), independent of the
 * native reader: for writing files the tests make from reference files (an LDM VAE cut out of a checkpoint, an fp8
 * copy of a checkpoint, a diffusers folder of decoded values).
 */
final class RawSafetensors {
    record Entry(String dtype, long[] shape, byte[] data) {
        /** F32 data as floats. */
        float[] floats() {
            if (!dtype.equals("F32")) {
                throw new IllegalStateException("not F32: " + dtype);
            }
            float[] out = new float[data.length / 4];
            ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
            return out;
        }

        static Entry ofFloats(float[] values, long... shape) {
            ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(values);
            return new Entry("F32", shape, b.array());
        }
    }

    private RawSafetensors() {}

    /** Every tensor of a file, by name in file order. */
    static Map<String, Entry> read(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        JsonNode header = new ObjectMapper().readTree(Arrays.copyOfRange(bytes, 8, 8 + (int) n));
        Map<String, Entry> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            JsonNode t = e.getValue();
            long[] shape = new long[t.get("shape").size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = t.get("shape").get(i).asLong();
            }
            int begin = 8 + (int) n + t.get("data_offsets").get(0).asInt();
            int end = 8 + (int) n + t.get("data_offsets").get(1).asInt();
            out.put(e.getKey(), new Entry(t.get("dtype").asText(), shape, Arrays.copyOfRange(bytes, begin, end)));
        }
        return out;
    }

    /** Writes the tensors (sorted by name, as safetensors' writers do) with the header padded to 8 bytes. */
    static void write(Path file, Map<String, Entry> tensors) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = json.createObjectNode();
        long offset = 0;
        Map<String, Entry> sorted = new TreeMap<>(tensors);
        for (Map.Entry<String, Entry> e : sorted.entrySet()) {
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", e.getValue().dtype());
            ArrayNode shape = t.putArray("shape");
            for (long d : e.getValue().shape()) {
                shape.add(d);
            }
            t.putArray("data_offsets").add(offset).add(offset + e.getValue().data().length);
            offset += e.getValue().data().length;
        }
        StringBuilder h = new StringBuilder(json.writeValueAsString(header));
        while (h.length() % 8 != 0) {
            h.append(' ');
        }
        byte[] hb = h.toString().getBytes(StandardCharsets.UTF_8);
        try (OutputStream out = Files.newOutputStream(file)) {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(hb.length).array());
            out.write(hb);
            for (Entry e : sorted.values()) {
                out.write(e.data());
            }
        }
    }
}
