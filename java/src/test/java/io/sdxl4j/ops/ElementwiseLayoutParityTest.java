package io.sdxl4j.ops;

import static io.sdxl4j.ops.Ours.run;
import static io.sdxl4j.ops.Ours.strided;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BinaryOperator;
import org.junit.jupiter.api.Test;

/** Broadcasting add/sub/mul, scale, concat and slice against torch's add/sub/mul, cat and narrow. */
class ElementwiseLayoutParityTest {

    // One IEEE float32 operation per output on both sides: correctly rounded, so the bits must agree.
    static final Tol ONE_OP = Tol.bitwise("a single correctly rounded float32 op per output");
    // concat and slice only move values.
    static final Tol COPY = Tol.bitwise("concat / slice only copy values");
    // scale: alpha * x + beta is a float32 multiply then an add (torch: x * alpha, then + beta). Today both
    // sides round the same two operations and agree bit for bit; a build that contracts them into an fma
    // (more accurate) may differ by the product's rounding, <= 1 ulp of the larger term: |d| <= 2^-23 s with
    // s = |alpha x| + |beta| (relative to the result that would be unbounded where alpha x ~ -beta).
    static final Tol SCALE = Tol.elementwise(0, 0x1p-23, "mul + add vs fma: 1 ulp of max(|alpha x|, |beta|)");

    private interface BinaryOp {
        Tensor apply(Tensor a, Tensor b);
    }

    private static void binaryCase(String label, HostArray a, HostArray b, BinaryOp ours, BinaryOperator<HostArray> torch) {
        HostArray ref = torch.apply(a, b);
        HostArray got;
        try (Tensor ta = a.toTensor(); Tensor tb = b.toTensor()) {
            got = run(() -> ours.apply(ta, tb));
        }
        Parity.assertClose(label, got, ref, ONE_OP);
    }

    private static void binaryAll(String name, BinaryOp ours, BinaryOperator<HostArray> torch) {
        SplittableRandom r = Seeds.rng(name);
        long[][][] shapes = {
            {{2, 3, 4, 5}, {2, 3, 4, 5}},
            {{2, 3, 4, 5}, {5}},            // trailing broadcast
            {{2, 3, 4, 5}, {3, 1, 1}},      // per-channel
            {{2, 1, 4, 1}, {1, 3, 1, 5}},   // both sides broadcast
            {{1}, {2, 3}},                  // scalar-like left
            {{4, 5}, {2, 3, 4, 5}},         // lower-rank left
            {{7, 1}, {7, 1}},
            {{3, 1, 5}, {1, 1, 1}},
        };
        for (long[][] s : shapes) {
            binaryCase(name + " " + java.util.Arrays.toString(s[0]) + " " + java.util.Arrays.toString(s[1]),
                    HostArray.randn(r, 1, s[0]), HostArray.randn(r, 1, s[1]), ours, torch);
        }
        // strided operands: a permuted view with a narrowed view
        HostArray ab = HostArray.randn(r, 1, 5, 3, 4);
        HostArray bb = HostArray.randn(r, 1, 3, 4, 9);
        HostArray ref = torch.apply(ab.permute(1, 2, 0), bb.narrow(2, 2, 5));
        HostArray got;
        try (Tensor ta0 = ab.toTensor(); Tensor ta = strided(ta0.permute(1, 2, 0));
             Tensor tb0 = bb.toTensor(); Tensor tb = strided(tb0.narrow(2, 2, 5))) {
            got = run(() -> ours.apply(ta, tb));
        }
        Parity.assertClose(name + " permuted [3,4,5] with narrowed [3,4,5]", got, ref, ONE_OP);
        // broadcast from a strided view: a [2,1,1,3] column picked out of a [2,1,1,6]
        HostArray cb = HostArray.randn(r, 1, 2, 1, 1, 6);
        HostArray x = HostArray.randn(r, 1, 2, 4, 5, 3);
        ref = torch.apply(x, cb.narrow(3, 1, 3));
        try (Tensor tx = x.toTensor(); Tensor tc0 = cb.toTensor(); Tensor tc = tc0.narrow(3, 1, 3)) {
            got = run(() -> ours.apply(tx, tc));
        }
        Parity.assertClose(name + " [2,4,5,3] with narrowed broadcast [2,1,1,3]", got, ref, ONE_OP);
        // SDXL: a resnet's time-embedding add, hidden [2,320,64,64] + temb[:, :, None, None]
        binaryCase(name + " [2,320,64,64] [2,320,1,1]", HostArray.randn(r, 1, 2, 320, 64, 64),
                HostArray.randn(r, 1, 2, 320, 1, 1), ours, torch);
    }

    @Test
    void add() {
        binaryAll("add", Ops::add, TorchOracle::add);
    }

    @Test
    void sub() {
        binaryAll("sub", Ops::sub, TorchOracle::sub);
    }

    @Test
    void mul() {
        binaryAll("mul", Ops::mul, TorchOracle::mul);
    }

    @Test
    void scale() {
        SplittableRandom r = Seeds.rng("scale");
        // the VAE latent scaling, CFG's x * (1 + g) + c, and random coefficients
        float[][] ab = {{0.13025f, 0f}, {1f / 0.13025f, 0f}, {-1f, 0f}, {7.5f, -0.25f},
            {(float) r.nextDouble(-3, 3), (float) r.nextDouble(-3, 3)}};
        for (float[] c : ab) {
            HostArray x = HostArray.randn(r, 2, 3, 17, 19);
            HostArray ref = TorchOracle.scale(x, c[0], c[1]);
            HostArray got;
            try (Tensor tx = x.toTensor()) {
                got = run(() -> Ops.scale(tx, c[0], c[1]));
            }
            Parity.assertClose("scale " + c[0] + "*x + " + c[1], got, ref, SCALE, scaleOf(x, c[0], c[1]), null);
        }
        HostArray base = HostArray.randn(r, 1, 4, 6, 5);
        HostArray x = base.permute(2, 0, 1);
        HostArray ref = TorchOracle.scale(x, 0.5f, 1f);
        HostArray got;
        try (Tensor t0 = base.toTensor(); Tensor tx = strided(t0.permute(2, 0, 1))) {
            got = run(() -> Ops.scale(tx, 0.5f, 1f));
        }
        Parity.assertClose("scale permuted view", got, ref, SCALE, scaleOf(x, 0.5f, 1f), null);
    }

    /** |alpha x| + |beta| per value: the scale of {@link #SCALE}'s bound. */
    private static float[] scaleOf(HostArray x, float alpha, float beta) {
        float[] s = new float[x.numel()];
        for (int i = 0; i < s.length; i++) {
            s[i] = Math.abs(alpha * x.data()[i]) + Math.abs(beta);
        }
        return s;
    }

    private static void concatCase(String label, List<HostArray> parts, int dim) {
        HostArray ref = TorchOracle.concat(parts, dim);
        List<Tensor> owned = new ArrayList<>();
        List<Tensor> inputs = new ArrayList<>();
        HostArray got;
        try {
            for (HostArray p : parts) {
                Tensor t = p.toTensor();
                owned.add(t);
                inputs.add(t);
            }
            got = run(() -> Ops.concat(inputs, dim));
        } finally {
            owned.forEach(Tensor::close);
        }
        Parity.assertClose(label, got, ref, COPY);
    }

    @Test
    void concat() {
        SplittableRandom r = Seeds.rng("concat");
        concatCase("concat dim0 [2,3,4]+[1,3,4]+[3,3,4]", List.of(HostArray.randn(r, 1, 2, 3, 4),
                HostArray.randn(r, 1, 1, 3, 4), HostArray.randn(r, 1, 3, 3, 4)), 0);
        concatCase("concat dim1 [2,3,4]+[2,5,4]", List.of(HostArray.randn(r, 1, 2, 3, 4), HostArray.randn(r, 1, 2, 5, 4)),
                1);
        concatCase("concat dim-1 [2,3,4]+[2,3,1]+[2,3,6]", List.of(HostArray.randn(r, 1, 2, 3, 4),
                HostArray.randn(r, 1, 2, 3, 1), HostArray.randn(r, 1, 2, 3, 6)), -1);
        concatCase("concat dim2 [2,3,4]+[2,3,0]+[2,3,2] (empty part)", List.of(HostArray.randn(r, 1, 2, 3, 4),
                HostArray.randn(r, 1, 2, 3, 0), HostArray.randn(r, 1, 2, 3, 2)), 2);
        concatCase("concat single part", List.of(HostArray.randn(r, 1, 3, 2)), 1);
        // SDXL: up-block skip connection, and the two text encoders' hidden states into the 2048 context
        concatCase("concat dim1 [2,1280,32,32]+[2,640,32,32]", List.of(HostArray.randn(r, 1, 2, 1280, 32, 32),
                HostArray.randn(r, 1, 2, 640, 32, 32)), 1);
        concatCase("concat dim-1 [2,77,768]+[2,77,1280]", List.of(HostArray.randn(r, 1, 2, 77, 768),
                HostArray.randn(r, 1, 2, 77, 1280)), -1);

        // strided parts: a permuted view and a narrowed view
        HostArray pb = HostArray.randn(r, 1, 4, 2, 3);
        HostArray nb = HostArray.randn(r, 1, 2, 3, 9);
        HostArray ref = TorchOracle.concat(List.of(pb.permute(1, 2, 0), nb.narrow(2, 3, 5)), 2);
        HostArray got;
        try (Tensor t0 = pb.toTensor(); Tensor a = strided(t0.permute(1, 2, 0));
             Tensor t1 = nb.toTensor(); Tensor b = strided(t1.narrow(2, 3, 5))) {
            got = run(() -> Ops.concat(List.of(a, b), 2));
        }
        Parity.assertClose("concat dim2 of permuted [2,3,4] + narrowed [2,3,5]", got, ref, COPY);
    }

    @Test
    void slice() {
        SplittableRandom r = Seeds.rng("slice");
        HostArray x = HostArray.randn(r, 1, 4, 5, 6);
        int[][] cases = {{0, 1, 2}, {1, 0, 5}, {2, 5, 1}, {2, 1, 4}, {-1, 2, 3}, {1, 3, 0}};
        for (int[] c : cases) {
            HostArray ref = TorchOracle.narrow(x, c[0], c[1], c[2]);
            HostArray got;
            try (Tensor tx = x.toTensor(); Tensor v = Ops.slice(tx, c[0], c[1], c[2])) {
                assertTrue(v.sharesStorageWith(tx), "slice must be a view");
                got = HostArray.of(v);
                // a slice of a slice, and the view fed to an op
                if (c[2] > 0) {
                    HostArray ref2 = TorchOracle.add(ref, ref);
                    HostArray got2 = run(() -> Ops.add(v, v));
                    Parity.assertClose("add(slice, slice) dim" + c[0], got2, ref2, ONE_OP);
                }
            }
            Parity.assertClose("slice dim" + c[0] + " start " + c[1] + " len " + c[2], got, ref, COPY);
        }
        // a slice of a permuted view
        HostArray ref = TorchOracle.narrow(x.permute(2, 0, 1), 1, 1, 2);
        HostArray got;
        try (Tensor tx = x.toTensor(); Tensor p = tx.permute(2, 0, 1); Tensor v = Ops.slice(p, 1, 1, 2)) {
            got = HostArray.of(v);
        }
        Parity.assertClose("slice of a permuted view", got, ref, COPY);
    }
}
