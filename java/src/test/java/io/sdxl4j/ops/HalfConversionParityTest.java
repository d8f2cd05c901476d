package io.sdxl4j.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.sdxl4j.DType;
import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * float <-> IEEE half and bfloat16 against torch's .to(torch.float16 / torch.bfloat16), bit for bit (both are
 * exact round-to-nearest-even conversions; NaN only has to stay NaN, its payload is not compared). Checks the
 * scalar conversions ({@link Ops#floatToHalfBits} ...) and the bulk {@link Tensor#to(DType)} path.
 */
class HalfConversionParityTest {

    private static final int RANDOM_COUNT = 1 << 20;

    /** Edge cases for both formats. */
    private static final float[] EDGES = {
        0f, -0f, 1f, -1f, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MIN_NORMAL, Float.MAX_VALUE, -Float.MAX_VALUE,
        Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, Float.intBitsToFloat(0x7f800001),
        Float.intBitsToFloat(0xffc00000), Float.intBitsToFloat(0x7fbfffff),
        // half: largest finite, the rounding boundary to Inf (65520 rounds to Inf, just below stays 65504)
        65504f, -65504f, 65519.996f, 65520f, -65520f, 65536f, 1e5f, 1e38f,
        // half: smallest normal 2^-14, subnormals, the smallest subnormal 2^-24, the zero boundary 2^-25
        6.1035156e-05f, 6.097555e-05f, 5.9604645e-08f, 2.9802322e-08f, Math.nextUp(2.9802322e-08f),
        Math.nextDown(2.9802322e-08f), 8.940697e-08f, 1e-8f, 1e-10f, 1e-40f,
        // bf16: largest finite 0x7f7f, its rounding boundary to Inf
        Float.intBitsToFloat(0x7f7f0000), Float.intBitsToFloat(0x7f7f7fff), Float.intBitsToFloat(0x7f7f8000),
        Float.intBitsToFloat(0x7f7fffff), Float.intBitsToFloat(0x00008000), Float.intBitsToFloat(0x00018000),
        Float.intBitsToFloat(0x807fffff),
        // ties: 1 + 2^-11 (half tie, even down), 1 + 3 * 2^-11 (tie, up); 1 + 2^-8 / 1 + 3 * 2^-8 (bf16 ties)
        1.00048828125f, 1.00146484375f, 1.00390625f, 1.01171875f, 2049f, 2051f, 4097f, 4099f,
    };

    /** ~1M floats: random bits (every exponent, NaN/Inf/subnormal floats included), values in the half range
     *  with random mantissas, exact ties of each format and their neighbours, plus the edge list. */
    private static float[] inputs(SplittableRandom r) {
        List<Float> edge = new ArrayList<>();
        for (float f : EDGES) {
            edge.add(f);
            edge.add(-f);
        }
        float[] x = new float[RANDOM_COUNT + edge.size()];
        for (int i = 0; i < RANDOM_COUNT; i++) {
            int bits = r.nextInt();
            switch (i % 8) {
                case 0, 1 -> x[i] = Float.intBitsToFloat(bits); // anything
                case 2, 3 -> { // exponents around the half range (2^-27 .. 2^17): normals, subnormals, overflow
                    int e = 127 - 27 + r.nextInt(45);
                    x[i] = Float.intBitsToFloat((bits & 0x807fffff) | (e << 23));
                }
                case 4 -> { // exact half ties: the 13 dropped bits are 1000...0 (normal half range)
                    int e = 127 - 14 + r.nextInt(30);
                    x[i] = Float.intBitsToFloat((bits & 0x807fe000) | 0x1000 | (e << 23));
                }
                case 5 -> { // exact half subnormal ties: (k + 1/2) * 2^-24, k < 1024
                    int k = r.nextInt(1024);
                    float v = (float) ((k + 0.5) * Math.pow(2, -24));
                    x[i] = (bits & 1) == 0 ? v : -v;
                }
                case 6 -> { // exact bf16 ties and their float neighbours, any exponent
                    float t = Float.intBitsToFloat((bits & 0xffff0000) | 0x8000);
                    x[i] = switch ((bits >>> 3) % 3) {
                        case 0 -> t;
                        case 1 -> Math.nextUp(t);
                        default -> Math.nextDown(t);
                    };
                }
                default -> { // half-tie neighbours
                    int e = 127 - 25 + r.nextInt(41);
                    float t = Float.intBitsToFloat((bits & 0x807fe000) | 0x1000 | (e << 23));
                    x[i] = (bits & 2) == 0 ? Math.nextUp(t) : Math.nextDown(t);
                }
            }
        }
        for (int i = 0; i < edge.size(); i++) {
            x[RANDOM_COUNT + i] = edge.get(i);
        }
        return x;
    }

    private static boolean isNaN(short bits, boolean bf16) {
        int b = bits & 0x7fff;
        return bf16 ? b > 0x7f80 : b > 0x7c00;
    }

    private static void assertSameBits(String label, float[] x, short[] got, short[] ref, boolean bf16) {
        int mismatches = 0;
        String first = null;
        for (int i = 0; i < x.length; i++) {
            boolean bothNaN = isNaN(got[i], bf16) && isNaN(ref[i], bf16);
            if (got[i] != ref[i] && !bothNaN) {
                if (mismatches++ == 0) {
                    first = String.format(Locale.ROOT, "x=%s (0x%08x): got 0x%04x, torch 0x%04x", x[i],
                            Float.floatToRawIntBits(x[i]), got[i] & 0xffff, ref[i] & 0xffff);
                }
            }
        }
        System.out.printf(Locale.ROOT, "[ops-parity] %-58s n=%-9d bit mismatches=%d%n", label, x.length, mismatches);
        if (mismatches > 0) {
            fail(label + ": " + mismatches + " of " + x.length + " conversions differ; first " + first + "; "
                    + Seeds.replay());
        }
    }

    private static short[] shorts(byte[] le) {
        short[] s = new short[le.length / 2];
        ByteBuffer.wrap(le).order(ByteOrder.LITTLE_ENDIAN).asShortBuffer().get(s);
        return s;
    }

    private static byte[] bytes(short[] s) {
        ByteBuffer b = ByteBuffer.allocate(s.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        b.asShortBuffer().put(s);
        return b.array();
    }

    private static void floatToBits(boolean bf16) {
        String name = bf16 ? "bf16" : "f16";
        float[] x = inputs(Seeds.rng("floatTo" + name));
        short[] ref = TorchOracle.toHalfBits(x, bf16);
        short[] scalar = new short[x.length];
        for (int i = 0; i < x.length; i++) {
            scalar[i] = bf16 ? Ops.floatToBf16Bits(x[i]) : Ops.floatToHalfBits(x[i]);
        }
        assertSameBits("float -> " + name + " (scalar) vs torch .to()", x, scalar, ref, bf16);
        short[] bulk;
        try (Tensor t = Tensor.of(x, x.length); Tensor h = t.to(bf16 ? DType.BF16 : DType.F16)) {
            assertEquals(bf16 ? DType.BF16 : DType.F16, h.dtype());
            bulk = shorts(h.toByteArray());
        }
        assertSameBits("float -> " + name + " (Tensor.to) vs torch .to()", x, bulk, ref, bf16);
    }

    private static void bitsToFloat(boolean bf16) {
        String name = bf16 ? "bf16" : "f16";
        short[] all = new short[65536];
        for (int i = 0; i < all.length; i++) {
            all[i] = (short) i;
        }
        float[] ref = TorchOracle.halfBitsToFloat(all, bf16);
        float[] scalar = new float[all.length];
        for (int i = 0; i < all.length; i++) {
            scalar[i] = bf16 ? Ops.bf16BitsToFloat(all[i]) : Ops.halfBitsToFloat(all[i]);
        }
        float[] bulk;
        try (Tensor h = Tensor.ofBytes(bytes(all), bf16 ? DType.BF16 : DType.F16, all.length)) {
            bulk = h.toFloatArray();
        }
        Tol exact = Tol.bitwise("every " + name + " value is exactly a float");
        long[] shape = {all.length};
        Parity.assertClose("all 65536 " + name + " -> float (scalar)", new HostArray(scalar, shape),
                new HostArray(ref, shape), exact);
        Parity.assertClose("all 65536 " + name + " -> float (toFloatArray)", new HostArray(bulk, shape),
                new HostArray(ref, shape), exact);
        // and back: every non-NaN value round-trips to its own bits
        for (int i = 0; i < all.length; i++) {
            if (Float.isNaN(scalar[i])) {
                continue;
            }
            short back = bf16 ? Ops.floatToBf16Bits(scalar[i]) : Ops.floatToHalfBits(scalar[i]);
            if (back != all[i]) {
                fail(String.format(Locale.ROOT, "%s 0x%04x -> %s -> 0x%04x does not round-trip", name, i, scalar[i],
                        back & 0xffff));
            }
        }
    }

    @Test
    void floatToHalf() {
        floatToBits(false);
    }

    @Test
    void floatToBf16() {
        floatToBits(true);
    }

    @Test
    void halfToFloat() {
        bitsToFloat(false);
    }

    @Test
    void bf16ToFloat() {
        bitsToFloat(true);
    }
}
