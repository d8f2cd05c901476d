package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Tensor handles: copies in and out, dtype conversion, views sharing storage, strides. */
class TensorTest {

    @Test
    void floatsLongsAndBytesRoundTrip() {
        float[] f = {1.5f, -2f, 3.25f, Float.MIN_VALUE, -0f, Float.MAX_VALUE};
        try (Tensor t = Tensor.of(f, 2, 3)) {
            assertArrayEquals(new long[] {2, 3}, t.shape());
            assertArrayEquals(new long[] {3, 1}, t.strides());
            assertEquals(DType.F32, t.dtype());
            assertEquals(Device.CPU, t.device());
            assertArrayEquals(f, t.toFloatArray());
            ByteBuffer expected = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : f) {
                expected.putFloat(v);
            }
            assertArrayEquals(expected.array(), t.toByteArray());
            try (Tensor back = Tensor.ofBytes(t.toByteArray(), DType.F32, 6)) {
                assertArrayEquals(f, back.toFloatArray());
            }
        }
        long[] l = {Long.MIN_VALUE, -1, 0, 49407, Long.MAX_VALUE};
        try (Tensor t = Tensor.ofLongs(l, 5)) {
            assertEquals(DType.I64, t.dtype());
            assertArrayEquals(l, t.toLongArray());
        }
    }

    @Test
    void halfConversionOfATensorMatchesTheScalarRounding() {
        Random rnd = new Random(1);
        float[] f = new float[4096];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) (rnd.nextGaussian() * Math.pow(2, rnd.nextInt(40) - 25));
        }
        try (Tensor t = Tensor.of(f, f.length); Tensor h = t.to(DType.F16); Tensor b = t.to(DType.BF16)) {
            ByteBuffer hb = ByteBuffer.wrap(h.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer bb = ByteBuffer.wrap(b.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
            float[] hf = h.toFloatArray();
            for (int i = 0; i < f.length; i++) {
                short hs = hb.getShort();
                assertEquals(Ops.floatToHalfBits(f[i]), hs, "f16 of " + f[i]);
                assertEquals(Ops.halfBitsToFloat(hs), hf[i], 0f);
                assertEquals(Ops.floatToBf16Bits(f[i]), bb.getShort(), "bf16 of " + f[i]);
            }
        }
    }

    @Test
    void viewsShareStorageAndCopiesDoNot() {
        float[] f = new float[24];
        for (int i = 0; i < f.length; i++) {
            f[i] = i;
        }
        try (Tensor t = Tensor.of(f, 2, 3, 4);
             Tensor p = t.permute(2, 0, 1);
             Tensor n = t.narrow(2, 1, 2);
             Tensor r = t.reshape(6, 4);
             Tensor c = p.contiguous()) {
            assertTrue(p.sharesStorageWith(t));
            assertTrue(n.sharesStorageWith(t));
            assertTrue(r.sharesStorageWith(t));
            assertFalse(p.isContiguous());
            assertFalse(c.sharesStorageWith(t));
            assertArrayEquals(new long[] {4, 2, 3}, p.shape());
            assertArrayEquals(new long[] {1, 12, 4}, p.strides());
            // p[k][i][j] = t[i][j][k] = 12 i + 4 j + k
            float[] pv = p.toFloatArray();
            float[] cv = c.toFloatArray();
            int idx = 0;
            for (int k = 0; k < 4; k++) {
                for (int i = 0; i < 2; i++) {
                    for (int j = 0; j < 3; j++) {
                        assertEquals(12 * i + 4 * j + k, pv[idx]);
                        assertEquals(pv[idx], cv[idx]);
                        idx++;
                    }
                }
            }
            float[] nv = n.toFloatArray();
            assertArrayEquals(new float[] {1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}, nv);
        }
    }

    @Test
    void viewsOutliveTheirSource() {
        Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2);
        Tensor row = t.narrow(0, 1, 1);
        t.close();
        assertArrayEquals(new float[] {3, 4}, row.toFloatArray());
        row.close();
    }
}
