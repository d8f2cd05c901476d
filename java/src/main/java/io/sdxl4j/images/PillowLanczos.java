package io.sdxl4j.images;

/**
 * Pillow's {@code Image.resize(size, Image.LANCZOS)} for 8-bit RGB, reproduced bit for bit: a separable Lanczos-3
 * filter widened by the scale when shrinking, coefficients normalised per output pixel and then rounded to 22-bit
 * fixed point, a horizontal pass (only when the width changes) whose 8-bit clipped result feeds a vertical pass
 * (only when the height changes). Pixels are packed {@code 0xRRGGBB} ints.
 */
final class PillowLanczos {
    /** Pillow keeps 8 bits for the value and 2 for overshoot: 32 - 8 - 2. */
    private static final int PRECISION_BITS = 22;
    private static final int HALF = 1 << (PRECISION_BITS - 1);
    private static final double ONE = 1 << PRECISION_BITS;
    private static final double LANCZOS_SUPPORT = 3.0;

    private PillowLanczos() {}

    /** The coefficient windows of one axis: output i reads {@code count[i]} inputs from {@code first[i]}. */
    record Windows(int kernelSize, int[] first, int[] count, int[] weights) {}

    static int[] resize(int[] rgb, int srcWidth, int srcHeight, int dstWidth, int dstHeight) {
        int[] out = rgb;
        int width = srcWidth;
        if (dstWidth != srcWidth) {
            out = horizontal(out, srcWidth, srcHeight, windows(srcWidth, dstWidth), dstWidth);
            width = dstWidth;
        }
        if (dstHeight != srcHeight) {
            out = vertical(out, width, windows(srcHeight, dstHeight), dstHeight);
        }
        return out == rgb ? rgb.clone() : out;
    }

    /** Pillow's truncated sinc: sinc(x) * sinc(x / 3) on [-3, 3). */
    static double lanczos(double x) {
        if (-LANCZOS_SUPPORT <= x && x < LANCZOS_SUPPORT) {
            return sinc(x) * sinc(x / 3);
        }
        return 0.0;
    }

    private static double sinc(double x) {
        if (x == 0.0) {
            return 1.0;
        }
        x = x * Math.PI;
        return Math.sin(x) / x;
    }

    /** Normalised double weights per output position, as Pillow's precompute_coeffs; exposed for the tests. */
    static double[][] weights(int inSize, int outSize, int[] firstOut) {
        double scale = (double) inSize / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = LANCZOS_SUPPORT * filterScale;
        double[][] result = new double[outSize][];
        for (int out = 0; out < outSize; out++) {
            double center = (out + 0.5) * scale;
            // (int) truncates toward zero exactly as Pillow's C cast; the clamp comes after, as there.
            int first = Math.max(0, (int) (center - support + 0.5));
            int count = Math.min(inSize, (int) (center + support + 0.5)) - first;
            // Pillow multiplies by the reciprocal rather than dividing: same here, for the same last bits.
            double reciprocal = 1.0 / filterScale;
            double[] w = new double[count];
            double sum = 0.0;
            for (int i = 0; i < count; i++) {
                w[i] = lanczos(((i + first) - center + 0.5) * reciprocal);
                sum += w[i];
            }
            if (sum != 0.0) {
                for (int i = 0; i < count; i++) {
                    w[i] /= sum;
                }
            }
            result[out] = w;
            firstOut[out] = first;
        }
        return result;
    }

    static Windows windows(int inSize, int outSize) {
        int[] first = new int[outSize];
        double[][] w = weights(inSize, outSize, first);
        int kernelSize = (int) Math.ceil(LANCZOS_SUPPORT * Math.max((double) inSize / outSize, 1.0)) * 2 + 1;
        int[] count = new int[outSize];
        int[] fixed = new int[outSize * kernelSize];
        for (int out = 0; out < outSize; out++) {
            count[out] = w[out].length;
            for (int i = 0; i < w[out].length; i++) {
                double k = w[out][i];
                // Round half away from zero, as Pillow's normalize_coeffs_8bpc.
                fixed[out * kernelSize + i] = k < 0 ? (int) (-0.5 + k * ONE) : (int) (0.5 + k * ONE);
            }
        }
        return new Windows(kernelSize, first, count, fixed);
    }

    /** Pillow's clip8: the accumulator's integer part (arithmetic shift = floor), clamped to a byte. */
    private static int clip8(int accumulator) {
        int v = accumulator >> PRECISION_BITS;
        return v < 0 ? 0 : Math.min(v, 255);
    }

    private static int[] horizontal(int[] src, int srcWidth, int height, Windows win, int dstWidth) {
        int[] dst = new int[dstWidth * height];
        int k = win.kernelSize();
        for (int y = 0; y < height; y++) {
            int row = y * srcWidth;
            for (int x = 0; x < dstWidth; x++) {
                int first = win.first()[x];
                int count = win.count()[x];
                int base = x * k;
                int r = HALF;
                int g = HALF;
                int b = HALF;
                for (int i = 0; i < count; i++) {
                    int p = src[row + first + i];
                    int c = win.weights()[base + i];
                    r += ((p >> 16) & 0xFF) * c;
                    g += ((p >> 8) & 0xFF) * c;
                    b += (p & 0xFF) * c;
                }
                dst[y * dstWidth + x] = (clip8(r) << 16) | (clip8(g) << 8) | clip8(b);
            }
        }
        return dst;
    }

    private static int[] vertical(int[] src, int width, Windows win, int dstHeight) {
        int[] dst = new int[width * dstHeight];
        int k = win.kernelSize();
        for (int y = 0; y < dstHeight; y++) {
            int first = win.first()[y];
            int count = win.count()[y];
            int base = y * k;
            for (int x = 0; x < width; x++) {
                int r = HALF;
                int g = HALF;
                int b = HALF;
                for (int i = 0; i < count; i++) {
                    int p = src[(first + i) * width + x];
                    int c = win.weights()[base + i];
                    r += ((p >> 16) & 0xFF) * c;
                    g += ((p >> 8) & 0xFF) * c;
                    b += (p & 0xFF) * c;
                }
                dst[y * width + x] = (clip8(r) << 16) | (clip8(g) << 8) | clip8(b);
            }
        }
        return dst;
    }
}
