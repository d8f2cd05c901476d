package io.sdxl4j;

/**
 * float8_e4m3fn (safetensors "F8_E4M3"), written here from the format's definition for the tests, independently of
 * the native decoder: sign bit, 4 exponent bits with bias 7, 3 mantissa bits; exponent 0 holds the subnormals
 * m * 2^-9; there are no infinities and only S.1111.111 is NaN, so the largest value is 1.75 * 2^8 = 448.
 *
 * <p>Encoding rounds to nearest, ties to even. Out of range it follows torch's {@code .to(torch.float8_e4m3fn)},
 * which does not saturate: a value that rounds above 448 (and Inf, NaN) becomes NaN. The tests keep their values in
 * range (the tiny reference weights are far below 448), so no test result depends on that choice.
 */
final class Float8E4M3 {
    private Float8E4M3() {}

    static float decode(byte code) {
        int b = code & 0xff;
        int e = (b >> 3) & 0xf;
        int m = b & 0x7;
        float sign = (b & 0x80) != 0 ? -1f : 1f;
        if (e == 15 && m == 7) {
            return Float.NaN;
        }
        return e == 0 ? sign * Math.scalb((float) m, -9) : sign * Math.scalb((float) (8 + m), e - 7 - 3);
    }

    static byte encode(float x) {
        int sign = (Float.floatToRawIntBits(x) >>> 31) << 7;
        double a = Math.abs((double) x);
        if (Double.isNaN(a) || Double.isInfinite(a)) {
            return (byte) (sign | 0x7f);
        }
        if (a == 0) {
            return (byte) sign;
        }
        int exp = Math.max(Math.getExponent(a), -6);   // the subnormals share exponent -6
        double q = Math.rint(Math.scalb(a, 3 - exp));  // the significand in units of 2^(exp-3), ties to even
        if (q == 16) {                                 // rounded up into the next binade
            q = 8;
            exp++;
        }
        if (q < 8) {
            return (byte) (sign | (int) q);            // subnormal
        }
        int biased = exp + 7;
        int mant = (int) q - 8;
        if (biased > 15 || (biased == 15 && mant == 7)) {
            return (byte) (sign | 0x7f);               // above 448: NaN, as torch
        }
        return (byte) (sign | biased << 3 | mant);
    }
}
