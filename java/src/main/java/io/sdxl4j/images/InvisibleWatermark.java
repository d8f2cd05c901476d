package io.sdxl4j.images;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;

/**
 * The invisible watermark diffusers' SDXL pipelines add to their images ({@code StableDiffusionXLWatermarker}
 * of diffusers 0.31 with invisible-watermark 0.2.0, method {@code dwtDct}), reproduced in Java value for value.
 *
 * <p>What upstream does to each image, and therefore what this class does, in float32 as upstream does it:
 * <ol>
 * <li>{@code x = 255 * (image / 2 + 0.5)}, channels reordered to BGR.</li>
 * <li>OpenCV's float BGR to YUV conversion (BT.601 coefficients, chroma offset 0.5, the value OpenCV uses for
 *     float images even though these are in [0,255]; fused multiply-adds as its SIMD kernel computes them).</li>
 * <li>Only the U plane is marked: imwatermark's scales are [0, 36, 36] but its loop visits channels 0 and 1
 *     only, and channel 0 has scale 0. V goes through the colour round trip unchanged.</li>
 * <li>One level of the Haar DWT (PyWavelets' {@code dwt2}) of the top-left region whose sides are multiples
 *     of 4. In every 4x4 block of the approximation band (row-major, bit {@code k % bits} for block k) the AC
 *     entry of largest magnitude (first one on ties) becomes {@code sign * (floor(|v| / 36) + 0.25 + 0.5 * bit)
 *     * 36}. The block is used as it is: despite its name the method applies no DCT.</li>
 * <li>The inverse DWT is called with the horizontal and vertical detail bands swapped
 *     ({@code idwt2((cA, (cV, cH, cD)))}). That changes the image far more than the watermark itself (up to
 *     the whole [-1,1] range on noise) and is reproduced because it is what SDXL images carry.</li>
 * <li>YUV back to BGR, then RGB, and {@code clamp(2 * (x / 255 - 0.5), -1, 1)}.</li>
 * </ol>
 *
 * <p>Exactness: on the reference cases (OpenCV 4.6 on an AVX2 machine, PyWavelets 1.1.1, numpy 1.24, torch 1.13)
 * the output is bit for bit upstream's. Measured on those cases, computing the colour conversion without fused
 * multiply-adds (OpenCV's SSE kernels, on CPUs without AVX2) moves values by up to 6e-7, and the DWT in float64
 * by up to 5e-7; neither flipped a quantisation floor there, but either could where a coefficient lies within
 * an ulp of a multiple of 36, which would move a value by up to about 0.3. numpy computes the floor itself in
 * float64 (a float32 scalar with a Python int), which is exact for float32 values, as is float32 floor division.
 * OpenCV converts each row in groups of 8 pixels and the last {@code width % 8} pixels of a row in scalar code
 * that rounds differently (measured: up to 3.6e-7 on those columns of a 300x261 image); SDXL widths are
 * multiples of 8, so this class follows the vector kernel everywhere.
 *
 * <p>Size rules, as upstream: diffusers returns images narrower than 256 unchanged ({@link #skips}); for wider
 * ones imwatermark needs {@code height * width >= 256 * 256} and otherwise fails ({@link #checkSize}).
 */
public final class InvisibleWatermark {
    /** diffusers' {@code WATERMARK_MESSAGE} (copied there from Stability AI's generative-models). */
    public static final long SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110L;
    /** Images narrower than this are returned unchanged by diffusers. */
    public static final int MIN_WIDTH = 256;
    /** imwatermark refuses images with fewer pixels ({@code rows * cols < 256 * 256}). */
    public static final long MIN_PIXELS = 256L * 256L;

    /** imwatermark's quantisation step for the marked chroma plane. */
    private static final float SCALE = 36f;
    /** Side of the blocks of the approximation band that each carry one bit. */
    private static final int BLOCK = 4;
    /** The Haar filter taps as PyWavelets holds them for float32 data: 1/sqrt(2) rounded to float. */
    private static final float HAAR = (float) 0.7071067811865476;

    // OpenCV's float RGB<->YUV coefficients (color.hpp / color_yuv.simd.hpp), all float literals there.
    private static final float B2Y = 0.114f;
    private static final float G2Y = 0.587f;
    private static final float R2Y = 0.299f;
    private static final float B2U = 0.492f;
    private static final float R2V = 0.877f;
    private static final float U2B = 2.032f;
    private static final float U2G = -0.395f;
    private static final float V2G = -0.581f;
    private static final float V2R = 1.140f;
    /** OpenCV's chroma offset for float images ({@code ColorChannel<float>::half()}), applied to [0,255] data too. */
    private static final float CHROMA_DELTA = 0.5f;

    private final int[] bits;

    /** A watermark of the given bits (each 0 or 1, at least one), embedded in order and repeated over the image. */
    public InvisibleWatermark(int[] bits) {
        if (bits == null || bits.length == 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "a watermark needs at least one bit");
        }
        for (int i = 0; i < bits.length; i++) {
            if (bits[i] != 0 && bits[i] != 1) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "watermark bit " + i + " is " + bits[i] + ", expected 0 or 1");
            }
        }
        this.bits = bits.clone();
    }

    /** The watermark diffusers puts on SDXL images: the binary digits of {@link #SDXL_MESSAGE}, most significant first. */
    public static InvisibleWatermark sdxl() {
        // diffusers: [int(bit) for bit in bin(WATERMARK_MESSAGE)[2:]], i.e. no leading zeros.
        String digits = Long.toBinaryString(SDXL_MESSAGE);
        int[] b = new int[digits.length()];
        for (int i = 0; i < b.length; i++) {
            b[i] = digits.charAt(i) - '0';
        }
        return new InvisibleWatermark(b);
    }

    /** A copy of the bits this watermark embeds. */
    public int[] bits() {
        return bits.clone();
    }

    /** True when diffusers would return images of this size unchanged (width below {@link #MIN_WIDTH}). */
    public static boolean skips(int height, int width) {
        return width < MIN_WIDTH;
    }

    /**
     * Fails early, before any heavy work, for an image size that {@link #apply} would refuse: width at least
     * {@link #MIN_WIDTH} (so diffusers does not skip it) but fewer than {@link #MIN_PIXELS} pixels, where
     * imwatermark raises "image too small".
     *
     * @throws SdxlException INVALID_ARGUMENT for such a size or a non-positive one
     */
    public static void checkSize(int height, int width) {
        if (height <= 0 || width <= 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "image size " + height + "x" + width + " must be positive");
        }
        if (!skips(height, width) && (long) height * width < MIN_PIXELS) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "a " + height + "x" + width + " image (" + (long) height * width
                    + " pixels) is too small for the SDXL invisible watermark: images at least " + MIN_WIDTH
                    + " wide need height*width >= 256*256 = " + MIN_PIXELS + " pixels (narrower ones are left unmarked). "
                    + "Generate at least 256x256, or turn the watermark off (diffusers: add_watermarker=False).");
        }
    }

    /**
     * Watermarks images as diffusers' {@code apply_watermark} does.
     *
     * @param images float [n,3,height,width] row-major, RGB in [-1,1], as the pipeline has them before postprocess
     * @return a new array of the same layout: a copy when {@link #skips} is true, else the watermarked images
     * @throws SdxlException INVALID_ARGUMENT when the array does not match the shape or {@link #checkSize} fails
     */
    public float[] apply(float[] images, int n, int height, int width) {
        checkLayout(images, n, height, width);
        if (skips(height, width)) {
            return images.clone();
        }
        checkSize(height, width);
        int plane = height * width;
        float[] out = new float[images.length];
        Yuv yuv = new Yuv(plane);
        for (int i = 0; i < n; i++) {
            int offset = i * 3 * plane;
            yuv.fromImage(images, offset);
            embed(yuv.u, height, width);
            yuv.toImage(out, offset);
        }
        return out;
    }

    /**
     * Reads the bits back as imwatermark's {@code WatermarkDecoder('bits', length).decode(img, 'dwtDct')} does:
     * each block votes 1 when its largest AC magnitude lies in the upper half of its 36-step, and a bit is 1 when
     * more than 127/255 of its blocks vote 1.
     *
     * <p>A read is not guaranteed to return the embedded bits, here as in imwatermark (whose decoder this matches bit
     * for bit on diffusers' outputs, including the bits it gets wrong). Measured with SDXL's 48 bits over 20 seeds
     * per row ({@code WatermarkReliability} in the tests; float image / after an 8-bit PNG round trip): on uniform
     * noise, 256x256 recovers 47.85 of 48 bits on average (85% of images read perfectly) and 288x256 to 1024x1024
     * read every bit; on smooth, photograph-like images (low-frequency gradients with mild noise) the read is
     * weaker: 41.7-45.9 of 48 bits on average at 256-768 px (5-40% perfect, worst 36 bits) and 47.2 at 1024x1024
     * (75% perfect, worst 42). The 8-bit round trip changes these by at most one bit. Use it to tell SDXL output
     * apart from unmarked images by the share of matching bits, not as an exact checksum.
     *
     * @param images float [n,3,height,width] RGB in [-1,1], the layout {@link #apply} returns
     * @return one row of {@code length} bits per image
     * @throws SdxlException INVALID_ARGUMENT for a layout mismatch or an image under {@link #MIN_PIXELS} pixels
     *     (imwatermark's decoder refuses those whatever the width)
     */
    public static int[][] decode(float[] images, int n, int height, int width, int length) {
        checkLayout(images, n, height, width);
        if (length <= 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "watermark length " + length + " must be positive");
        }
        if ((long) height * width < MIN_PIXELS) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "a " + height + "x" + width
                    + " image is too small to decode the invisible watermark: it needs height*width >= " + MIN_PIXELS + " pixels");
        }
        int plane = height * width;
        int[][] out = new int[n][];
        Yuv yuv = new Yuv(plane);
        for (int i = 0; i < n; i++) {
            yuv.fromImage(images, i * 3 * plane);
            out[i] = readBits(yuv.u, height, width, length);
        }
        return out;
    }

    private static void checkLayout(float[] images, int n, int height, int width) {
        if (images == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "images is null");
        }
        if (n < 0 || height <= 0 || width <= 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "shape [" + n + ",3," + height + "," + width + "] must be positive");
        }
        long expected = (long) n * 3 * height * width;
        if (images.length != expected) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "images has " + images.length + " values, but [" + n + ",3,"
                    + height + "," + width + "] needs " + expected);
        }
    }

    /** One image's planes in OpenCV's float YUV, and the conversions to and from the pipeline's [-1,1] RGB. */
    private static final class Yuv {
        final float[] y;
        final float[] u;
        final float[] v;

        Yuv(int plane) {
            y = new float[plane];
            u = new float[plane];
            v = new float[plane];
        }

        /** diffusers' 255 * (x / 2 + 0.5) in float32 (torch), then cv2.cvtColor(BGR2YUV) on float32. */
        void fromImage(float[] images, int offset) {
            int plane = y.length;
            for (int p = 0; p < plane; p++) {
                float r = 255f * (images[offset + p] / 2f + 0.5f);
                float g = 255f * (images[offset + plane + p] / 2f + 0.5f);
                float b = 255f * (images[offset + 2 * plane + p] / 2f + 0.5f);
                // OpenCV's vector kernel: y = fma(B, b2y, fma(G, g2y, R * r2y)), then one fma per chroma value.
                float luma = Math.fma(b, B2Y, Math.fma(g, G2Y, r * R2Y));
                y[p] = luma;
                u[p] = Math.fma(b - luma, B2U, CHROMA_DELTA);
                v[p] = Math.fma(r - luma, R2V, CHROMA_DELTA);
            }
        }

        /** cv2.cvtColor(YUV2BGR) on float32, then diffusers' clamp(2 * (x / 255 - 0.5), -1, 1) in float32. */
        void toImage(float[] out, int offset) {
            int plane = y.length;
            for (int p = 0; p < plane; p++) {
                float cb = u[p] - CHROMA_DELTA;
                float cr = v[p] - CHROMA_DELTA;
                float b = Math.fma(cb, U2B, y[p]);
                float g = Math.fma(cr, V2G, Math.fma(cb, U2G, y[p]));
                float r = Math.fma(cr, V2R, y[p]);
                out[offset + p] = toPipelineRange(r);
                out[offset + plane + p] = toPipelineRange(g);
                out[offset + 2 * plane + p] = toPipelineRange(b);
            }
        }

        private static float toPipelineRange(float x255) {
            float x = 2f * (x255 / 255f - 0.5f);
            return Math.min(1f, Math.max(-1f, x));
        }
    }

    /**
     * The four Haar subbands of a plane's region, named as PyWavelets' dwtn keys: first letter the filter along
     * rows (axis 0), second along columns (axis 1). dwt2 returns (aa, (da, ad, dd)) as (cA, (cH, cV, cD)).
     */
    private static final class Haar {
        final int rows;
        final int cols;
        final float[] aa;
        final float[] ad;
        final float[] da;
        final float[] dd;

        /**
         * pywt.dwt2(plane[:rows, :cols], 'haar') in float32: axis 0 first, then axis 1. Each output is
         * dec[0] * x[2k+1] + dec[1] * x[2k], products rounded to float, as PyWavelets' convolution computes it.
         */
        Haar(float[] plane, int width, int regionRows, int regionCols) {
            rows = regionRows / 2;
            cols = regionCols / 2;
            // Along axis 0: low and high pass of row pairs, full region width.
            float[] low = new float[rows * regionCols];
            float[] high = new float[rows * regionCols];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < regionCols; c++) {
                    float even = plane[2 * r * width + c];
                    float odd = plane[(2 * r + 1) * width + c];
                    low[r * regionCols + c] = HAAR * odd + HAAR * even;
                    high[r * regionCols + c] = -HAAR * odd + HAAR * even;
                }
            }
            aa = new float[rows * cols];
            ad = new float[rows * cols];
            da = new float[rows * cols];
            dd = new float[rows * cols];
            splitColumns(low, regionCols, aa, ad);
            splitColumns(high, regionCols, da, dd);
        }

        private void splitColumns(float[] source, int sourceCols, float[] lowOut, float[] highOut) {
            for (int r = 0; r < rows; r++) {
                for (int k = 0; k < cols; k++) {
                    float even = source[r * sourceCols + 2 * k];
                    float odd = source[r * sourceCols + 2 * k + 1];
                    lowOut[r * cols + k] = HAAR * odd + HAAR * even;
                    highOut[r * cols + k] = -HAAR * odd + HAAR * even;
                }
            }
        }

        /**
         * pywt.idwt2 in float32 of the bands given as (cA, (cH, cV, cD)) = (aa, (horizontal, vertical, dd)), written
         * over the region: axis 1 first, then axis 0; x[2k] = rec_lo[0] a + rec_hi[0] d, x[2k+1] = rec_lo[1] a +
         * rec_hi[1] d with rec_lo = (s, s), rec_hi = (s, -s), each product rounded to float.
         */
        void inverseInto(float[] horizontal, float[] vertical, float[] plane, int width) {
            int regionCols = 2 * cols;
            float[] low = new float[rows * regionCols];
            float[] high = new float[rows * regionCols];
            // pywt pairs cA with cV ('ad') and cH ('da') with cD ('dd') along axis 1.
            mergeColumns(aa, vertical, low);
            mergeColumns(horizontal, dd, high);
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < regionCols; c++) {
                    float a = low[r * regionCols + c];
                    float d = high[r * regionCols + c];
                    plane[2 * r * width + c] = HAAR * a + HAAR * d;
                    plane[(2 * r + 1) * width + c] = HAAR * a + -HAAR * d;
                }
            }
        }

        private void mergeColumns(float[] approx, float[] detail, float[] out) {
            int regionCols = 2 * cols;
            for (int r = 0; r < rows; r++) {
                for (int k = 0; k < cols; k++) {
                    float a = approx[r * cols + k];
                    float d = detail[r * cols + k];
                    out[r * regionCols + 2 * k] = HAAR * a + HAAR * d;
                    out[r * regionCols + 2 * k + 1] = HAAR * a + -HAAR * d;
                }
            }
        }
    }

    /** imwatermark's EmbedMaxDct.encode for the one plane it marks (U), in place. */
    private void embed(float[] u, int height, int width) {
        Haar bands = new Haar(u, width, height / BLOCK * BLOCK, width / BLOCK * BLOCK);
        int blockRows = bands.rows / BLOCK;
        int blockCols = bands.cols / BLOCK;
        int num = 0;
        for (int i = 0; i < blockRows; i++) {
            for (int j = 0; j < blockCols; j++) {
                int bit = bits[num % bits.length];
                int at = largestAcEntry(bands.aa, bands.cols, i, j);
                float value = bands.aa[at];
                // floor(|v| / 36) is exact for a float |v| (numpy computes it in float64 here); the result is k*36 + 9
                // or k*36 + 27, stored back into the float32 band.
                double magnitude = Math.abs((double) value);
                double marked = (Math.floor(magnitude / SCALE) + 0.25 + 0.5 * bit) * SCALE;
                bands.aa[at] = (float) (value >= 0f ? marked : -marked);
                num++;
            }
        }
        // Upstream passes (cA, (cV, cH, cD)) where pywt expects (cA, (cH, cV, cD)): the details are swapped.
        bands.inverseInto(bands.ad, bands.da, u, width);
    }

    private static int[] readBits(float[] u, int height, int width, int length) {
        Haar bands = new Haar(u, width, height / BLOCK * BLOCK, width / BLOCK * BLOCK);
        int blockRows = bands.rows / BLOCK;
        int blockCols = bands.cols / BLOCK;
        long[] ones = new long[length];
        long[] votes = new long[length];
        int num = 0;
        for (int i = 0; i < blockRows; i++) {
            for (int j = 0; j < blockCols; j++) {
                double magnitude = Math.abs((double) bands.aa[largestAcEntry(bands.aa, bands.cols, i, j)]);
                int slot = num % length;
                if (magnitude % SCALE > 0.5 * SCALE) {
                    ones[slot]++;
                }
                votes[slot]++;
                num++;
            }
        }
        int[] out = new int[length];
        for (int k = 0; k < length; k++) {
            // np.mean of the 0/1 scores, then mean * 255 > 127 (a bit no block voted on is NaN, read as 0).
            double mean = (double) ones[k] / votes[k];
            out[k] = mean * 255 > 127 ? 1 : 0;
        }
        return out;
    }

    /**
     * Index into {@code band} of the AC entry (any but the block's first) of largest magnitude in block (i, j),
     * the first one in row-major order on ties, and the first NaN if any, as numpy's argmax picks it.
     */
    private static int largestAcEntry(float[] band, int bandCols, int i, int j) {
        int origin = i * BLOCK * bandCols + j * BLOCK;
        int best = -1;
        float bestMagnitude = 0f;
        for (int k = 1; k < BLOCK * BLOCK; k++) {
            int at = origin + (k / BLOCK) * bandCols + k % BLOCK;
            float magnitude = Math.abs(band[at]);
            if (Float.isNaN(magnitude)) {
                return at;
            }
            if (best < 0 || magnitude > bestMagnitude) {
                best = at;
                bestMagnitude = magnitude;
            }
        }
        return best;
    }
}
