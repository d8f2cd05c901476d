package io.sdxl4j.ops;

/**
 * One tolerance of an op against the oracle, with the reason for its size. Kinds:
 * <ul>
 *   <li>{@link #bitwise}: every value has the same bits (ops that only move or convert values exactly);</li>
 *   <li>{@link #elementwise}: |got - ref| <= rel * |ref| + abs * s for every value, s = 1 or a per-value scale
 *       the case supplies (pointwise formulas, where both sides round the same few float operations);</li>
 *   <li>{@link #scaledMax}: max |got - ref| <= t * max(1, max |ref|) (reductions, GEMM, conv: rounding
 *       error grows with the reduction length and the summation order differs from torch's).</li>
 * </ul>
 */
record Tol(Kind kind, double rel, double abs, String reason) {

    enum Kind { BITWISE, ELEMENTWISE, SCALED_MAX }

    static Tol bitwise(String reason) {
        return new Tol(Kind.BITWISE, 0, 0, reason);
    }

    static Tol elementwise(double rel, double abs, String reason) {
        return new Tol(Kind.ELEMENTWISE, rel, abs, reason);
    }

    static Tol scaledMax(double t, String reason) {
        return new Tol(Kind.SCALED_MAX, t, 0, reason);
    }

    @Override
    public String toString() {
        return switch (kind) {
            case BITWISE -> "bitwise";
            case ELEMENTWISE -> "|d| <= " + rel + "*|ref| + " + abs + "*s";
            case SCALED_MAX -> "max|d| <= " + rel + "*max(1,max|ref|)";
        } + " (" + reason + ")";
    }
}
