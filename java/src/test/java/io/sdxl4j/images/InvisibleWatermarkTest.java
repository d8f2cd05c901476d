package io.sdxl4j.images;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Decoder round trips, size rules and input validation of {@link InvisibleWatermark}. */
class InvisibleWatermarkTest {

    /**
     * SDXL's own image size. Each bit is a majority vote over (height/8)*(width/8)/bits blocks, and a block votes
     * wrong when quantising its largest AC entry lets another entry become the largest. At 256x256 that is about
     * 21 votes per bit of SDXL's 48, and upstream itself (its steps run with OpenCV 4.6 and PyWavelets 1.1.1)
     * reads back 3 to 9 wrong bits on textured 256x256 images; at 1024x1024 (85 votes) it reads them all.
     */
    private static final int SIDE = 1024;

    /** A textured batch in [-0.9, 0.9]: slow waves plus fine deterministic noise, different per image and channel. */
    private static float[] texturedImages(int n, int height, int width) {
        SplittableRandom noise = new SplittableRandom(2024);
        float[] out = new float[n * 3 * height * width];
        for (int i = 0; i < n; i++) {
            for (int ch = 0; ch < 3; ch++) {
                for (int y = 0; y < height; y++) {
                    for (int x = 0; x < width; x++) {
                        double v = 0.4 * Math.sin((x + 17 * ch + 31 * i) / 23.0) * Math.cos((y - 11 * ch) / 37.0)
                                + 0.2 * ((double) (x + y) / (height + width) - 0.5) + noise.nextDouble(-0.3, 0.3);
                        out[((i * 3 + ch) * height + y) * width + x] = (float) v;
                    }
                }
            }
        }
        return out;
    }

    @Test
    void sdxlBitsRoundTripThroughTheDecoder() {
        int n = 2;
        int height = SIDE;
        int width = SIDE;
        InvisibleWatermark sdxl = InvisibleWatermark.sdxl();
        float[] plain = texturedImages(n, height, width);
        int[][] before = InvisibleWatermark.decode(plain, n, height, width, sdxl.bits().length);
        int[][] after = InvisibleWatermark.decode(sdxl.apply(plain, n, height, width), n, height, width, sdxl.bits().length);
        for (int i = 0; i < n; i++) {
            assertFalse(Arrays.equals(sdxl.bits(), before[i]), "an unmarked image does not already carry the bits");
            assertArrayEquals(sdxl.bits(), after[i], "image " + i);
        }
    }

    /**
     * Other lengths, on uniform noise in [-1,1] as the reference cases use. Noise keeps the AC entries large, so
     * quantising one rarely hands the maximum to another entry; on the textured images above, 32 bits (a length
     * that divides the 128 blocks of a row, so each bit always sits in the same block columns) read back with bit
     * 28 wrong, and so does upstream: its steps run with OpenCV 4.6 / PyWavelets 1.1.1 on that very image encode
     * it identically to this class and decode the same wrong bit.
     */
    @Test
    void otherBitPatternsRoundTrip() {
        SplittableRandom random = new SplittableRandom(7);
        float[] noise = new float[3 * SIDE * SIDE];
        for (int i = 0; i < noise.length; i++) {
            noise[i] = (float) random.nextDouble(-1, 1);
        }
        for (int length : new int[] {1, 8, 32, 100}) {
            int[] bits = random.ints(length, 0, 2).toArray();
            float[] marked = new InvisibleWatermark(bits).apply(noise, 1, SIDE, SIDE);
            assertArrayEquals(bits, InvisibleWatermark.decode(marked, 1, SIDE, SIDE, length)[0], length + " bits");
        }
    }

    @Test
    void imagesOfABatchAreMarkedIndependently() {
        int height = 256;
        int width = 264;
        int plane = 3 * height * width;
        float[] batch = texturedImages(3, height, width);
        float[] before = batch.clone();
        float[] marked = InvisibleWatermark.sdxl().apply(batch, 3, height, width);
        assertArrayEquals(before, batch, "the input is left as it was");
        for (int i = 0; i < 3; i++) {
            float[] single = Arrays.copyOfRange(batch, i * plane, (i + 1) * plane);
            assertArrayEquals(InvisibleWatermark.sdxl().apply(single, 1, height, width),
                    Arrays.copyOfRange(marked, i * plane, (i + 1) * plane), "image " + i);
        }
        for (float v : marked) {
            assertTrue(v >= -1f && v <= 1f, "clamped to [-1,1]");
        }
    }

    @Test
    void narrowImagesComeBackUnchangedAsACopy() {
        float[] images = texturedImages(1, 512, 255);
        float[] out = InvisibleWatermark.sdxl().apply(images, 1, 512, 255);
        assertTrue(InvisibleWatermark.skips(512, 255));
        assertNotSame(images, out);
        assertArrayEquals(images, out);
    }

    @Test
    void sizeRulesFollowDiffusersThenImwatermark() {
        assertDoesNotThrow(() -> InvisibleWatermark.checkSize(256, 256));
        assertDoesNotThrow(() -> InvisibleWatermark.checkSize(128, 512), "exactly 256*256 pixels is accepted");
        assertDoesNotThrow(() -> InvisibleWatermark.checkSize(64, 255), "too narrow: skipped, not refused");
        assertFalse(InvisibleWatermark.skips(8, 256));
        expectInvalid(() -> InvisibleWatermark.checkSize(255, 256), "watermark off");
        expectInvalid(() -> InvisibleWatermark.checkSize(8, 1024), "65536");
        expectInvalid(() -> InvisibleWatermark.sdxl().apply(new float[3 * 255 * 256], 1, 255, 256), "too small");
        expectInvalid(() -> InvisibleWatermark.checkSize(0, 256), "positive");
    }

    @Test
    void badArgumentsAreInvalidArgument() {
        InvisibleWatermark sdxl = InvisibleWatermark.sdxl();
        expectInvalid(() -> sdxl.apply(new float[3 * 256 * 256 - 1], 1, 256, 256), "needs 196608");
        expectInvalid(() -> sdxl.apply(new float[0], -1, 256, 256), "positive");
        expectInvalid(() -> sdxl.apply(null, 1, 256, 256), "null");
        expectInvalid(() -> new InvisibleWatermark(new int[0]), "at least one bit");
        expectInvalid(() -> new InvisibleWatermark(new int[] {1, 2}), "bit 1 is 2");
        expectInvalid(() -> InvisibleWatermark.decode(new float[3 * 128 * 256], 1, 128, 256, 48), "too small to decode");
        expectInvalid(() -> InvisibleWatermark.decode(new float[3 * 256 * 256], 1, 256, 256, 0), "length");
    }

    @Test
    void bitsAreACopy() {
        InvisibleWatermark sdxl = InvisibleWatermark.sdxl();
        int[] bits = sdxl.bits();
        assertEquals(48, bits.length);
        bits[0] ^= 1;
        assertEquals(1, sdxl.bits()[0]);
    }

    private static void expectInvalid(Executable call, String messagePart) {
        SdxlException e = assertThrows(SdxlException.class, call);
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains(messagePart), e.getMessage());
    }
}
