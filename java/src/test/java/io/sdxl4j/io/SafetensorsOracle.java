package io.sdxl4j.io;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An independent validator of the safetensors format, written from the format's rules with Jackson's streaming
 * parser and Java's strict UTF-8 decoder, to decide whether a mutated file is valid. The native parser must
 * accept exactly the files this accepts. Rules: 8-byte LE header length N (2 <= N <= 100 MB, inside the file);
 * strict UTF-8, strict JSON object; "__metadata__" an object of strings; every other key a tensor with exactly
 * "dtype" (a known name), "shape" (non-negative integers) and "data_offsets" (2 non-negative integers);
 * byte length = numel x dtype size; sorted by offsets, the tensors tile the data section exactly.
 */
final class SafetensorsOracle {
    static final Map<String, Integer> DTYPE_SIZES = Map.ofEntries(
            Map.entry("BOOL", 1), Map.entry("U8", 1), Map.entry("I8", 1), Map.entry("F8_E4M3", 1),
            Map.entry("F8_E5M2", 1), Map.entry("I16", 2), Map.entry("U16", 2), Map.entry("F16", 2),
            Map.entry("BF16", 2), Map.entry("I32", 4), Map.entry("U32", 4), Map.entry("F32", 4),
            Map.entry("F64", 8), Map.entry("I64", 8), Map.entry("U64", 8), Map.entry("C64", 8),
            Map.entry("F8_E8M0", 1));

    private static final BigInteger U64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);

    record Entry(String name, String dtype, long[] shape, long begin, long end) {}

    /** Thrown for an invalid file, with the reason. */
    static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;

        Invalid(String why) {
            super(why);
        }
    }

    private SafetensorsOracle() {}

    /** The tensors of a valid file (data offsets relative to the data section), or Invalid. */
    static List<Entry> validate(byte[] file) throws Invalid {
        if (file.length < 8) {
            throw new Invalid("shorter than 8 bytes");
        }
        long n = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (n < 2 || n > 100_000_000L || 8 + n > file.length) {
            throw new Invalid("bad header length " + Long.toUnsignedString(n));
        }
        byte[] header = java.util.Arrays.copyOfRange(file, 8, 8 + (int) n);
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(header));
        } catch (CharacterCodingException e) {
            throw new Invalid("header is not UTF-8");
        }
        long dataSize = file.length - 8 - n;
        List<Entry> entries = new ArrayList<>();
        try (JsonParser p = new JsonFactory().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION).createParser(header)) {
            expect(p.nextToken() == JsonToken.START_OBJECT, "top level is not an object");
            Set<String> seen = new HashSet<>();
            while (p.nextToken() != JsonToken.END_OBJECT) {
                String key = string(p.currentName());
                expect(seen.add(key), "duplicate key");
                p.nextToken();
                if (key.equals("__metadata__")) {
                    expect(p.currentToken() == JsonToken.START_OBJECT, "metadata not an object");
                    while (p.nextToken() != JsonToken.END_OBJECT) {
                        string(p.currentName());
                        expect(p.nextToken() == JsonToken.VALUE_STRING, "metadata value not a string");
                        string(p.getText());
                    }
                } else {
                    entries.add(tensor(p, key));
                }
            }
            expect(p.nextToken() == null, "trailing content");
        } catch (Invalid e) {
            throw e;
        } catch (Exception e) { // Jackson: malformed JSON, duplicates, control characters, ...
            throw new Invalid("bad JSON: " + e.getMessage());
        }
        for (Entry e : entries) {
            BigInteger numel = BigInteger.ONE;
            BigInteger nonZero = BigInteger.ONE;
            for (long d : e.shape) {
                numel = numel.multiply(BigInteger.valueOf(d));
                nonZero = d == 0 ? nonZero : nonZero.multiply(BigInteger.valueOf(d));
            }
            // Shapes are int64 in the core: even an empty tensor's other dims must multiply to a valid size.
            expect(nonZero.bitLength() < 64, "shape overflows");
            BigInteger bytes = numel.multiply(BigInteger.valueOf(DTYPE_SIZES.get(e.dtype)));
            expect(e.begin <= e.end, "begin > end");
            expect(bytes.equals(BigInteger.valueOf(e.end - e.begin)), "byte length mismatch");
            expect(e.end <= dataSize, "past the end");
        }
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort((a, b) -> a.begin != b.begin ? Long.compare(a.begin, b.begin) : Long.compare(a.end, b.end));
        long at = 0;
        for (Entry e : sorted) {
            expect(e.begin == at, "gap or overlap");
            at = e.end;
        }
        expect(at == dataSize, "data section not covered exactly");
        return entries;
    }

    private static Entry tensor(JsonParser p, String name) throws Exception {
        expect(p.currentToken() == JsonToken.START_OBJECT, "tensor entry not an object");
        String dtype = null;
        long[] shape = null;
        long[] offsets = null;
        while (p.nextToken() != JsonToken.END_OBJECT) {
            String field = string(p.currentName());
            p.nextToken();
            switch (field) {
                case "dtype" -> {
                    expect(dtype == null && p.currentToken() == JsonToken.VALUE_STRING, "bad dtype");
                    dtype = p.getText();
                    expect(DTYPE_SIZES.containsKey(dtype), "unknown dtype");
                }
                case "shape" -> {
                    expect(shape == null, "duplicate shape");
                    shape = integers(p);
                }
                case "data_offsets" -> {
                    expect(offsets == null, "duplicate offsets");
                    offsets = integers(p);
                    expect(offsets.length == 2, "data_offsets needs 2 numbers");
                }
                default -> throw new Invalid("unknown field " + field);
            }
        }
        expect(dtype != null && shape != null && offsets != null, "missing field");
        return new Entry(name, dtype, shape, offsets[0], offsets[1]);
    }

    /**
     * An array of non-negative JSON integers below 2^63 (a larger offset cannot lie inside any file; a larger
     * dimension cannot be a tensor's, as in the Rust implementation's usize on 64-bit hosts minus the sign bit
     * that Java and the core's int64 shapes need).
     */
    private static long[] integers(JsonParser p) throws Exception {
        expect(p.currentToken() == JsonToken.START_ARRAY, "not an array");
        List<Long> out = new ArrayList<>();
        while (p.nextToken() != JsonToken.END_ARRAY) {
            expect(p.currentToken() == JsonToken.VALUE_NUMBER_INT, "not an integer");
            expect(!p.getText().startsWith("-"), "negative");
            BigInteger v = p.getBigIntegerValue();
            expect(v.compareTo(U64_MAX) <= 0, "beyond u64");
            expect(v.bitLength() < 63, "too large for any file");
            out.add(v.longValue());
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    /** Rejects strings with unpaired surrogates (from \\u escapes), which are not Unicode text. */
    private static String string(String s) throws Invalid {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                expect(i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1)), "lone surrogate");
                i++;
            } else {
                expect(!Character.isLowSurrogate(c), "lone surrogate");
            }
        }
        return s;
    }

    private static void expect(boolean ok, String why) throws Invalid {
        if (!ok) {
            throw new Invalid(why);
        }
    }
}
