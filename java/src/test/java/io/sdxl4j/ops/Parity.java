package io.sdxl4j.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.sdxl4j.ops.TorchOracle.Precision;
import java.util.Locale;
import java.util.function.Function;

/**
 * Compares an op's result with the oracle's under a {@link Tol}, and prints one line per comparison with
 * every error measure (max |d|, max |d| scaled by max(1, max |ref|), ||d|| / ||ref||), so the margins the
 * tolerances leave can be read off a test run. Failure messages carry the run seed.
 */
final class Parity {
    private Parity() {}

    /** Error measures of a against b (non-finite values must match exactly and are left out). */
    private record Measures(double maxAbs, double maxRef, double nrm, double worstRatio, int worst, String nonFinite) {
        double scaled() {
            return maxAbs / Math.max(1.0, maxRef);
        }
    }

    private static Measures measure(float[] a, float[] b, Tol tol, float[] absScale) {
        double maxAbs = 0;
        double maxRef = 0;
        double sumD2 = 0;
        double sumR2 = 0;
        double worstRatio = 0; // elementwise: |d| / (rel |ref| + abs * scale)
        int worst = -1;
        double worstAbs = -1;
        for (int i = 0; i < a.length; i++) {
            float x = a[i];
            float r = b[i];
            if (Float.isNaN(x) || Float.isNaN(r) || Float.isInfinite(x) || Float.isInfinite(r)) {
                if (Float.compare(x, r) != 0) {
                    return new Measures(0, 0, 0, 0, i, String.format(Locale.ROOT, "at %d got %s, torch %s", i, x, r));
                }
                continue;
            }
            double d = Math.abs((double) x - r);
            maxAbs = Math.max(maxAbs, d);
            maxRef = Math.max(maxRef, Math.abs(r));
            sumD2 += d * d;
            sumR2 += (double) r * r;
            if (tol.kind() == Tol.Kind.ELEMENTWISE) {
                double ratio = d / (tol.rel() * Math.abs(r) + tol.abs() * (absScale == null ? 1.0 : absScale[i]));
                if (worst < 0 || ratio > worstRatio) {
                    worstRatio = ratio;
                    worst = i;
                }
            } else if (d > worstAbs) {
                worstAbs = d;
                worst = i;
            }
        }
        double nrm = sumR2 == 0 ? Math.sqrt(sumD2) : Math.sqrt(sumD2 / sumR2);
        return new Measures(maxAbs, maxRef, nrm, worstRatio, worst, null);
    }

    private static String describe(Measures m, Tol tol) {
        return String.format(Locale.ROOT, "max|d|=%.3g max|ref|=%.3g scaled=%.3g ||d||/||ref||=%.3g%s", m.maxAbs(),
                m.maxRef(), m.scaled(), m.nrm(),
                tol.kind() == Tol.Kind.ELEMENTWISE ? String.format(Locale.ROOT, " worst d/tol=%.3g", m.worstRatio()) : "");
    }

    static void assertClose(String label, HostArray got, HostArray ref, Tol tol) {
        assertClose(label, got, ref, tol, null, null);
    }

    /**
     * The op's result against the exact (float64 torch) answer under {@code tol}; torch's own float32 result is
     * measured against the same answer and printed alongside, for comparison.
     */
    static void assertCloseToExact(String label, HostArray got, Function<Precision, HostArray> oracle, Tol tol) {
        assertCloseToExact(label, got, oracle, tol, null);
    }

    /** As {@link #assertCloseToExact(String, HostArray, Function, Tol)} with a per-value absolute scale. */
    static void assertCloseToExact(String label, HostArray got, Function<Precision, HostArray> oracle, Tol tol,
                                   float[] absScale) {
        HostArray exact = oracle.apply(Precision.F64);
        HostArray torch32 = oracle.apply(Precision.F32);
        assertClose(label, got, exact, tol, absScale, torch32);
    }

    /**
     * @param absScale per-value factor of the tolerance's absolute term (null: 1), for formulas whose rounding
     *                 error scales with an input rather than with the result
     * @param torch32  torch's float32 result, measured against ref for information (null: none)
     */
    static void assertClose(String label, HostArray got, HostArray ref, Tol tol, float[] absScale, HostArray torch32) {
        assertArrayEquals(ref.shape(), got.shape(), label + ": shape; " + Seeds.replay());
        float[] a = got.data();
        float[] b = ref.data();
        if (tol.kind() == Tol.Kind.BITWISE) {
            assertBitwise(label, a, b, tol);
            return;
        }
        Measures m = measure(a, b, tol, absScale);
        if (m.nonFinite() != null) {
            fail(label + ": " + m.nonFinite() + "; " + Seeds.replay());
        }
        String line = describe(m, tol);
        String torchLine = "";
        if (torch32 != null) {
            Measures t = measure(torch32.data(), b, tol, absScale);
            torchLine = t.nonFinite() != null ? " | torch-f32: " + t.nonFinite()
                    : String.format(Locale.ROOT, " | torch-f32: max|d|=%.3g scaled=%.3g ||d||/||ref||=%.3g", t.maxAbs(),
                            t.scaled(), t.nrm());
        }
        System.out.printf(Locale.ROOT, "[ops-parity] %-58s n=%-9d %s%s%n", label, a.length, line, torchLine);
        boolean ok = switch (tol.kind()) {
            case ELEMENTWISE -> m.worstRatio() <= 1.0;
            case SCALED_MAX -> m.scaled() <= tol.rel();
            default -> throw new AssertionError();
        };
        if (!ok) {
            int w = m.worst();
            fail(String.format(Locale.ROOT, "%s: %s%s; worst at %d: got %s, %s %s; tolerance %s; %s", label, line,
                    torchLine, w, a[w], torch32 != null ? "exact" : "torch", b[w], tol, Seeds.replay()));
        }
    }

    private static void assertBitwise(String label, float[] a, float[] b, Tol tol) {
        int mismatches = 0;
        int first = -1;
        for (int i = 0; i < a.length; i++) {
            boolean same = Float.floatToRawIntBits(a[i]) == Float.floatToRawIntBits(b[i])
                    || (Float.isNaN(a[i]) && Float.isNaN(b[i]));
            if (!same && mismatches++ == 0) {
                first = i;
            }
        }
        System.out.printf(Locale.ROOT, "[ops-parity] %-58s n=%-9d bit mismatches=%d%n", label, a.length, mismatches);
        if (mismatches > 0) {
            fail(String.format(Locale.ROOT, "%s: %d of %d values differ in bits; first at %d: got %s (0x%08x), "
                            + "torch %s (0x%08x); tolerance %s; %s", label, mismatches, a.length, first, a[first],
                    Float.floatToRawIntBits(a[first]), b[first], Float.floatToRawIntBits(b[first]), tol,
                    Seeds.replay()));
        }
    }
}
