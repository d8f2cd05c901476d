package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.io.SafetensorsFile;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * {@link Generator} against torch (cases/rng): every case of the index, compared bit for bit. The kind of a
 * case is read from its params: {@code seed} + {@code shape} (one draw; large draws store first64/last64),
 * {@code draw_shapes} (successive draws from one generator), {@code list_generator_seeds} (diffusers'
 * randn_tensor with a list of generators, next to one generator drawing the whole batch).
 */
class GeneratorReferenceTest {
    @TestFactory
    Stream<DynamicTest> everyCase() {
        return ReferenceData.cases("rng").stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        JsonNode p = c.get("params");
        String name = c.get("name").asText();
        try (SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile("rng", c))) {
            if (p.has("draw_shapes")) {
                try (Generator g = Generator.seeded(seed(p.get("seed")))) {
                    int i = 0;
                    for (JsonNode s : p.get("draw_shapes")) {
                        try (Tensor t = g.randn(shape(s))) {
                            checkBits(name + " draw" + i, f, "draw" + i, t);
                        }
                        i++;
                    }
                }
            } else if (p.has("list_generator_seeds")) {
                long[] shape = shape(p.get("shape"));
                List<Generator> gens = new ArrayList<>();
                try {
                    for (JsonNode s : p.get("list_generator_seeds")) {
                        gens.add(Generator.seeded(seed(s)));
                    }
                    try (Tensor t = Generator.randnTensor(gens, shape)) {
                        checkBits(name + " list_of_generators", f, "list_of_generators", t);
                    }
                } finally {
                    gens.forEach(Generator::close);
                }
                try (Generator g = Generator.seeded(seed(p.get("single_generator_seed"))); Tensor t = g.randn(shape)) {
                    checkBits(name + " single_generator", f, "single_generator", t);
                }
            } else if (p.has("seed") && p.has("shape")) {
                long[] shape = shape(p.get("shape"));
                try (Generator g = Generator.seeded(seed(p.get("seed"))); Tensor t = g.randn(shape)) {
                    assertArrayEquals(shape, t.shape(), name);
                    if (f.contains("values")) {
                        checkBits(name, f, "values", t);
                    } else {
                        float[] all = t.toFloatArray();
                        checkBits(name + " first64", expected(f, "first64"), Arrays.copyOfRange(all, 0, 64));
                        checkBits(name + " last64", expected(f, "last64"), Arrays.copyOfRange(all, all.length - 64, all.length));
                    }
                }
            } else {
                fail(name + ": unknown kind of rng case, params " + p);
            }
        }
    }

    /** Seeds up to 2^64 - 1 are in the index (Jackson reads those as BigInteger); a long holds them all. */
    static long seed(JsonNode n) {
        String s = n.asText();
        return s.startsWith("-") ? Long.parseLong(s) : Long.parseUnsignedLong(s);
    }

    static long[] shape(JsonNode n) {
        long[] out = new long[n.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = n.get(i).asLong();
        }
        return out;
    }

    private static float[] expected(SafetensorsFile f, String name) {
        try (Tensor t = f.tensor(name)) {
            return t.toFloatArray();
        }
    }

    private static void checkBits(String what, SafetensorsFile f, String name, Tensor actual) {
        assertArrayEquals(f.shape(name), actual.shape(), what + " shape");
        assertEquals(DType.F32, actual.dtype(), what);
        checkBits(what, expected(f, name), actual.toFloatArray());
    }

    /** Bitwise equality (not just ==: -0 vs +0 and NaN payloads count too). */
    static void checkBits(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + " length");
        int mismatches = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                mismatches++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        System.out.printf("[reference] rng %s: %d values, %d bit mismatches%n", what, expected.length, mismatches);
        if (mismatches > 0) {
            fail(what + ": " + mismatches + " of " + expected.length + " values differ; first at " + first + ": expected "
                    + expected[first] + " got " + actual[first]);
        }
    }

    @Test
    void aListOfOneGeneratorIsThatGenerator() {
        try (Generator a = Generator.seeded(42); Generator b = Generator.seeded(42);
                Tensor viaList = Generator.randnTensor(List.of(a), 2, 4, 8, 8); Tensor direct = b.randn(2, 4, 8, 8)) {
            checkBits("list of one", direct.toFloatArray(), viaList.toFloatArray());
        }
    }

    @Test
    void copyContinuesIndependentlyAndCloseIsIdempotent() {
        try (Generator g = Generator.seeded(Long.parseUnsignedLong("18446744073709551615"))) {
            assertEquals("18446744073709551615", Long.toUnsignedString(g.initialSeed()));
            g.randn(7).close(); // leaves a cached normal sample in the stream, which the copy must carry
            try (Generator c = g.copy(); Tensor a = g.randn(3); Tensor b = c.randn(3)) {
                checkBits("copy", a.toFloatArray(), b.toFloatArray());
            }
            g.manualSeed(0);
            try (Generator fresh = Generator.seeded(0); Tensor a = g.randn(5); Tensor b = fresh.randn(5)) {
                checkBits("manualSeed", b.toFloatArray(), a.toFloatArray());
            }
        }
        Generator g = Generator.seeded(1);
        g.close();
        g.close();
        assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> g.randn(1)).code());
    }

    @Test
    void badArguments() {
        try (Generator g = Generator.seeded(1)) {
            assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> g.randn(2, -1)).code());
            assertEquals(ErrorCode.INVALID_ARGUMENT,
                    assertThrows(SdxlException.class, () -> Generator.randnTensor(List.of(g, g), 3, 4)).code());
            assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> Generator.randnTensor(List.of(g))).code());
        }
    }
}
