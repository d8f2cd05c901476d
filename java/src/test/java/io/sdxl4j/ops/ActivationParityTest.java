package io.sdxl4j.ops;

import static io.sdxl4j.ops.Ours.run;
import static io.sdxl4j.ops.Ours.strided;

import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import io.sdxl4j.ops.TorchOracle.Precision;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** silu, gelu (erf / tanh), quick_gelu, geglu and softmax against torch's functional ops (float64 = exact). */
class ActivationParityTest {

    // All against the exact (float64 torch) result. silu / quick_gelu: a float32 exp (libm, < 1 ulp), an add
    // and a divide: a few ulp relative (1 ulp = 6e-8 relative); the absolute 1e-7 only matters for results
    // within 0.1 of zero.
    static final Tol POINTWISE = Tol.elementwise(1e-6, 1e-7, "float32 exp + 2 roundings: a few ulp");
    // gelu(x) = x/2 (1 + erf(x/sqrt 2)) (and the tanh form) cancels for x << 0: 1 + erf is a difference of
    // floats near -1, so each ulp (2^-24) of error in the float32 erf/tanh becomes an absolute error
    // 2^-25 |x| however small the result. Hence an absolute term proportional to |x| (to |h * gate| for
    // geglu): 4 ulps of erf, 1.2e-7 |x|. (torch's own float32 gelu needs this too: at x = -2 it is 1.8e-7
    // = 4e-6 relative off.)
    static final Tol GELU = Tol.elementwise(1e-6, 1.2e-7, "x/2 (1 + erf) cancels for x << 0; abs term x |x|");
    // softmax: exp(x - max) (< 1 ulp) times 1 / (row sum of up to 1024 terms): a few ulp relative.
    static final Tol SOFTMAX = Tol.elementwise(1e-6, 1e-9, "float32 exp, row sum, one multiply: a few ulp");

    /** Edge values every activation sees in addition to the random ones. */
    static final float[] EDGES = {
        -100f, -88f, -40f, -20f, -10f, -6f, -5f, -3f, -1f, -1e-3f, -1e-30f, -0f, 0f, 1e-30f, 1e-3f, 1f, 3f, 5f,
        6f, 10f, 20f, 40f, 88f, 100f, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY
    };

    private static HostArray withEdges(SplittableRandom r, int randomCount) {
        float[] a = new float[randomCount + EDGES.length];
        for (int i = 0; i < randomCount; i++) {
            a[i] = (float) (r.nextGaussian() * 3);
        }
        System.arraycopy(EDGES, 0, a, randomCount, EDGES.length);
        return new HostArray(a, new long[] {a.length});
    }

    /** |x| per value: the scale of the absolute term of {@link #GELU}. */
    private static float[] absOf(HostArray x) {
        float[] s = new float[x.numel()];
        for (int i = 0; i < s.length; i++) {
            s[i] = Math.abs(x.data()[i]);
        }
        return s;
    }

    /** |h * gate| per output of geglu(x), h and gate the two halves of x's last dim. */
    private static float[] abs2Of(HostArray x) {
        long[] s = x.shape();
        int twoD = (int) s[s.length - 1];
        int d = twoD / 2;
        float[] out = new float[x.numel() / 2];
        for (int i = 0; i < out.length; i++) {
            int row = i / d;
            int c = i % d;
            out[i] = Math.abs(x.data()[row * twoD + c] * x.data()[row * twoD + d + c]);
        }
        return out;
    }

    /** A torch oracle of one input, in either precision. */
    private interface Oracle {
        HostArray apply(Precision p, HostArray x);
    }

    private static void unaryCase(String label, HostArray x, Function<Tensor, Tensor> ours, Oracle torch, Tol tol,
                                  Function<HostArray, float[]> absScale) {
        HostArray got;
        try (Tensor tx = x.toTensor()) {
            got = run(() -> ours.apply(tx));
        }
        Parity.assertCloseToExact(label, got, p -> torch.apply(p, x), tol, absScale == null ? null : absScale.apply(x));
    }

    /** The same op on a permuted (non-contiguous) view of base. */
    private static void permutedCase(String label, HostArray base, int[] dims, Function<Tensor, Tensor> ours,
                                     Oracle torch, Tol tol, Function<HostArray, float[]> absScale) {
        HostArray x = base.permute(dims);
        HostArray got;
        try (Tensor t0 = base.toTensor(); Tensor tx = strided(t0.permute(java.util.Arrays.stream(dims).asLongStream()
                .toArray()))) {
            got = run(() -> ours.apply(tx));
        }
        Parity.assertCloseToExact(label, got, p -> torch.apply(p, x), tol, absScale == null ? null : absScale.apply(x));
    }

    private static void unaryAll(String name, Function<Tensor, Tensor> ours, Oracle torch, Tol tol,
                                 Function<HostArray, float[]> absScale) {
        SplittableRandom r = Seeds.rng(name);
        unaryCase(name + " random*3 + edges", withEdges(r, 200_000), ours, torch, tol, absScale);
        unaryCase(name + " [2,1280,8,8]", HostArray.randn(r, 2, 2, 1280, 8, 8), ours, torch, tol, absScale);
        permutedCase(name + " permuted view [5,3,4]", HostArray.randn(r, 2, 3, 4, 5), new int[] {2, 0, 1}, ours, torch,
                tol, absScale);
    }

    @Test
    void silu() {
        unaryAll("silu", Ops::silu, TorchOracle::silu, POINTWISE, null);
    }

    @Test
    void gelu() {
        unaryAll("gelu", Ops::gelu, TorchOracle::gelu, GELU, ActivationParityTest::absOf);
    }

    @Test
    void geluTanh() {
        unaryAll("gelu_tanh", Ops::geluTanh, TorchOracle::geluTanh, GELU, ActivationParityTest::absOf);
    }

    @Test
    void quickGelu() {
        unaryAll("quick_gelu", Ops::quickGelu, TorchOracle::quickGelu, POINTWISE, null);
    }

    @Test
    void geglu() {
        SplittableRandom r = Seeds.rng("geglu");
        Function<HostArray, float[]> s = ActivationParityTest::abs2Of;
        unaryCase("geglu [3,5,14]", HostArray.randn(r, 2, 3, 5, 14), Ops::geglu, TorchOracle::geglu, GELU, s);
        unaryCase("geglu [2]", HostArray.randn(r, 2, 2), Ops::geglu, TorchOracle::geglu, GELU, s);
        // the SDXL feed-forward at 1280 channels: [tokens, 2 * 5120] -> [tokens, 5120]
        unaryCase("geglu [1,1024,10240]", HostArray.randn(r, 2, 1, 1024, 10240), Ops::geglu, TorchOracle::geglu, GELU, s);
        permutedCase("geglu permuted view [3,4,6]", HostArray.randn(r, 2, 6, 4, 3), new int[] {2, 1, 0}, Ops::geglu,
                TorchOracle::geglu, GELU, s);
    }

    @Test
    void softmax() {
        SplittableRandom r = Seeds.rng("softmax");
        float ninf = Float.NEGATIVE_INFINITY;
        HostArray special = new HostArray(new float[] {
            ninf, ninf, 1f, 2f, // masked entries
            1e4f, 1e4f - 1f, 1e4f - 30f, -1e4f, // large logits: needs the max subtracted
            0f, 0f, 0f, 0f, // uniform
            -1e-3f, 88f, -88f, 5f,
        }, new long[] {4, 4});
        unaryCase("softmax special rows", special, Ops::softmax, TorchOracle::softmax, SOFTMAX, null);
        unaryCase("softmax [3,1]", HostArray.randn(r, 1, 3, 1), Ops::softmax, TorchOracle::softmax, SOFTMAX, null);
        unaryCase("softmax [7,33] std 5", HostArray.randn(r, 5, 7, 33), Ops::softmax, TorchOracle::softmax, SOFTMAX, null);
        // attention-score shapes: 77 text keys, 1024 latent keys
        unaryCase("softmax [2,10,256,77] std 3", HostArray.randn(r, 3, 2, 10, 256, 77), Ops::softmax,
                TorchOracle::softmax, SOFTMAX, null);
        unaryCase("softmax [1,4,256,1024] std 3", HostArray.randn(r, 3, 1, 4, 256, 1024), Ops::softmax,
                TorchOracle::softmax, SOFTMAX, null);
        permutedCase("softmax permuted view [2,5,9]", HostArray.randn(r, 2, 9, 5, 2), new int[] {2, 1, 0}, Ops::softmax,
                TorchOracle::softmax, SOFTMAX, null);
    }

    @Test
    void softmaxAllMaskedRowIsNanLikeTorch() {
        float ninf = Float.NEGATIVE_INFINITY;
        HostArray x = new HostArray(new float[] {ninf, ninf, ninf, 0f, 1f, 2f}, new long[] {2, 3});
        unaryCase("softmax all -inf row (NaN as torch)", x, Ops::softmax, TorchOracle::softmax, SOFTMAX, null);
    }
}
