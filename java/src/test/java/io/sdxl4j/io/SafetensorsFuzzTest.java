package io.sdxl4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Feeds seeded, reproducible mutations of valid safetensors files (bytes, bits, digits, the length field,
 * truncation, JSON-level edits) through the Java API. For every file the native reader must either reject it
 * with BAD_MODEL_FILE naming the file, or accept it; it must accept exactly the files the independent
 * {@link SafetensorsOracle} accepts, and then return each tensor's bytes exactly as stored.
 */
class SafetensorsFuzzTest {
    private static final long SEED = Long.getLong("sdxl4j.fuzz.seed", 20261125L);
    private static final int MUTATIONS = Integer.getInteger("sdxl4j.fuzz.count", 3000);

    @TempDir
    Path dir;

    @Test
    void mutatedFilesAreRejectedOrReadExactly() throws Exception {
        List<byte[]> bases = baseFiles();
        Random rnd = new Random(SEED);
        int accepted = 0;
        int rejected = 0;
        Path file = dir.resolve("mutant.safetensors");
        for (int i = 0; i < MUTATIONS; i++) {
            byte[] base = bases.get(rnd.nextInt(bases.size()));
            int kind = rnd.nextInt(9);
            byte[] mutant = mutate(base, kind, rnd);
            Files.write(file, mutant);
            String context = "mutation " + i + " (kind " + kind + ", seed " + SEED + ")";
            List<SafetensorsOracle.Entry> expected;
            try {
                expected = SafetensorsOracle.validate(mutant);
            } catch (SafetensorsOracle.Invalid why) {
                expected = null;
            }
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                if (expected == null) {
                    fail(context + ": native reader accepted a file the oracle rejects: " + header(mutant));
                }
                checkContents(f, mutant, expected, context);
                accepted++;
            } catch (SdxlException e) {
                if (expected != null) {
                    fail(context + ": native reader rejected a valid file (" + e.getMessage() + "): " + header(mutant));
                }
                assertEquals(ErrorCode.BAD_MODEL_FILE, e.code(), context + ": " + e.getMessage());
                assertTrue(e.getMessage().contains("mutant.safetensors"), context + ": message must name the file: " + e.getMessage());
                rejected++;
            }
        }
        System.out.printf("safetensors fuzz: %d mutations (seed %d): %d accepted as valid, %d rejected%n",
                MUTATIONS, SEED, accepted, rejected);
        assertTrue(rejected > MUTATIONS / 2, "most mutations should be invalid");
        assertTrue(accepted > 20, "some mutations should stay valid, so acceptance is really tested");
    }

    private static void checkContents(SafetensorsFile f, byte[] file, List<SafetensorsOracle.Entry> entries, String context) {
        long n = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        List<String> names = new ArrayList<>();
        for (SafetensorsOracle.Entry e : entries) {
            names.add(e.name());
        }
        names.sort(null);
        assertEquals(names, f.names(), context);
        for (SafetensorsOracle.Entry e : entries) {
            assertEquals(e.dtype(), f.dtypeName(e.name()), context);
            assertArrayEquals(e.shape(), f.shape(e.name()), context);
            boolean supported = List.of("F32", "F16", "BF16", "I64").contains(e.dtype());
            if (supported) {
                try (Tensor t = f.tensor(e.name())) {
                    byte[] stored = Arrays.copyOfRange(file, (int) (8 + n + e.begin()), (int) (8 + n + e.end()));
                    assertArrayEquals(stored, t.toByteArray(), context + ": bytes of " + e.name());
                }
            } else {
                try (Tensor t = f.tensor(e.name())) {
                    fail(context + ": dtype " + e.dtype() + " should be UNSUPPORTED, got " + t);
                } catch (SdxlException ex) {
                    assertEquals(ErrorCode.UNSUPPORTED, ex.code(), context);
                }
            }
        }
    }

    private static String header(byte[] file) {
        int end = (int) Math.min(file.length, 8 + 400);
        return new String(file, Math.min(8, file.length), Math.max(0, end - 8), StandardCharsets.ISO_8859_1);
    }

    /** Valid files with every supported dtype, a zero-size tensor and metadata, written by SafetensorsWriter. */
    private List<byte[]> baseFiles() throws Exception {
        List<byte[]> out = new ArrayList<>();
        Random rnd = new Random(7);
        for (int variant = 0; variant < 3; variant++) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("down.0.weight", Tensor.of(randomFloats(rnd, 24), 4, 6));
            tensors.put("down.0.bias", Tensor.of(randomFloats(rnd, 4), 4));
            try (Tensor h = Tensor.of(randomFloats(rnd, 12), 3, 4)) {
                tensors.put("half", h.to(io.sdxl4j.DType.F16));
                tensors.put("brain", h.to(io.sdxl4j.DType.BF16));
            }
            tensors.put("ids", Tensor.ofLongs(new long[] {49406, 320, 49407}, 3));
            if (variant > 0) {
                tensors.put("empty", Tensor.of(new float[0], 0, 5));
            }
            Map<String, String> meta = variant == 2 ? Map.of("format", "pt", "note", "caf\u00e9 \u2603") : Map.of();
            Path p = dir.resolve("base" + variant + ".safetensors");
            SafetensorsWriter.write(p, tensors, meta);
            tensors.values().forEach(Tensor::close);
            byte[] bytes = Files.readAllBytes(p);
            SafetensorsOracle.validate(bytes); // the bases themselves must be valid
            out.add(bytes);
        }
        return out;
    }

    private static float[] randomFloats(Random rnd, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) rnd.nextGaussian();
        }
        return f;
    }

    private static byte[] mutate(byte[] base, int kind, Random rnd) throws Exception {
        byte[] b = base.clone();
        int n = (int) ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        switch (kind) {
            case 0 -> b[8 + rnd.nextInt(n)] = (byte) rnd.nextInt(256); // random header byte
            case 1 -> b[8 + rnd.nextInt(n)] ^= (byte) (1 << rnd.nextInt(8)); // one header bit
            case 2 -> { // a digit of the header changed to another digit (sizes, offsets, shapes)
                List<Integer> digits = new ArrayList<>();
                for (int i = 8; i < 8 + n; i++) {
                    if (b[i] >= '0' && b[i] <= '9') {
                        digits.add(i);
                    }
                }
                b[digits.get(rnd.nextInt(digits.size()))] = (byte) ('0' + rnd.nextInt(10));
            }
            case 3 -> b = Arrays.copyOf(b, rnd.nextInt(b.length)); // truncation
            case 4 -> { // the length field: off by a little, or wild
                long v = switch (rnd.nextInt(4)) {
                    case 0 -> n + rnd.nextInt(17) - 8;
                    case 1 -> rnd.nextLong();
                    case 2 -> b.length - 8 + rnd.nextInt(3) - 1;
                    default -> rnd.nextInt(8);
                };
                ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(v);
            }
            case 5 -> { // bytes appended or removed at the end of the data section
                b = Arrays.copyOf(b, Math.max(8 + n, b.length + rnd.nextInt(9) - 4));
            }
            case 6 -> { // a byte inserted into or deleted from the header, length field kept in step
                int at = 8 + rnd.nextInt(n);
                byte[] header = Arrays.copyOfRange(b, 8, 8 + n);
                byte[] data = Arrays.copyOfRange(b, 8 + n, b.length);
                byte[] edited;
                if (rnd.nextBoolean()) {
                    edited = new byte[n + 1];
                    System.arraycopy(header, 0, edited, 0, at - 8);
                    String alphabet = " \t\n{}[],:\"0123456789-.eE\\u";
                    edited[at - 8] = (byte) alphabet.charAt(rnd.nextInt(alphabet.length()));
                    System.arraycopy(header, at - 8, edited, at - 7, n - (at - 8));
                } else {
                    edited = new byte[n - 1];
                    System.arraycopy(header, 0, edited, 0, at - 8);
                    System.arraycopy(header, at - 7, edited, at - 8, n - (at - 7));
                }
                b = assemble(edited, data);
            }
            default -> b = jsonMutation(b, n, rnd); // kinds 7, 8: structural edits that keep the JSON well-formed
        }
        return b;
    }

    private static byte[] jsonMutation(byte[] b, int n, Random rnd) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = (ObjectNode) json.readTree(Arrays.copyOfRange(b, 8, 8 + n));
        byte[] data = Arrays.copyOfRange(b, 8 + n, b.length);
        List<String> names = new ArrayList<>();
        for (Iterator<String> it = root.fieldNames(); it.hasNext();) {
            String k = it.next();
            if (!k.equals("__metadata__")) {
                names.add(k);
            }
        }
        String name = names.get(rnd.nextInt(names.size()));
        ObjectNode t = (ObjectNode) root.get(name);
        ArrayNode shape = (ArrayNode) t.get("shape");
        ArrayNode offsets = (ArrayNode) t.get("data_offsets");
        String text = null;
        switch (rnd.nextInt(14)) {
            case 0 -> t.remove(List.of("dtype", "shape", "data_offsets").get(rnd.nextInt(3)));
            case 1 -> t.put("extra", 1);
            case 2 -> t.put("dtype", List.of("F32", "F16", "BF16", "I64", "I32", "U8", "F64", "BOOL", "f32", "Q4", "")
                    .get(rnd.nextInt(11)));
            case 3 -> { // reshape: often still valid (same element count), sometimes not
                List<List<Integer>> shapes = List.of(List.of(6, 4), List.of(24), List.of(2, 3, 4), List.of(2, 2),
                        List.of(12), List.of(3), List.of(1, 3), List.of(0), List.of());
                shape.removeAll();
                shapes.get(rnd.nextInt(shapes.size())).forEach(shape::add);
            }
            case 4 -> { // swap or shift offsets
                long a = offsets.get(0).asLong();
                long e = offsets.get(1).asLong();
                offsets.removeAll();
                switch (rnd.nextInt(3)) {
                    case 0 -> offsets.add(e).add(a);
                    case 1 -> offsets.add(a + 2).add(e + 2);
                    default -> offsets.add(a).add(e).add(e);
                }
            }
            case 5 -> shape.add(-1);
            case 6 -> shape.add(1.0);
            case 7 -> t.put("dtype", 4);
            case 8 -> root.putObject("__metadata__").put("k", rnd.nextBoolean() ? "v" : null);
            case 9 -> root.putObject("__metadata__").put("n", 5);
            case 10 -> root.put("scalar", "x");
            case 11 -> text = json.writeValueAsString(root).replaceFirst("\"" + java.util.regex.Pattern.quote(name) + "\"",
                    "\"" + name + "\":{},\"" + name + "\""); // duplicate key
            case 12 -> text = json.writeValueAsString(root).replace("\"" + name + "\"",
                    "\"\\u" + List.of("0041", "d800", "dc00", "00e9", "zz12").get(rnd.nextInt(5)) + name + "\"");
            default -> { // rename a tensor, or the metadata, to a clashing or odd name
                root.remove(name);
                root.set(List.of("__metadata__", name + "\u00e9", "", name.toUpperCase()).get(rnd.nextInt(4)), t);
            }
        }
        byte[] header = (text != null ? text : json.writeValueAsString(root)).getBytes(StandardCharsets.UTF_8);
        return assemble(header, data);
    }

    private static byte[] assemble(byte[] header, byte[] data) {
        ByteBuffer out = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(header.length).put(header).put(data);
        return out.array();
    }
}
