package io.sdxl4j.ops;

import static io.sdxl4j.ops.Ours.run;
import static io.sdxl4j.ops.Ours.strided;

import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** linear and matmul against torch::linear / torch::matmul. */
class LinearMatmulParityTest {

    // Against the exact (float64) product: every output is a float32 dot product of length K <= 2560 with
    // blocked fma accumulation, whose rounding error grows like sqrt(K) * 2^-24 * |x| |w|: observed <= 5e-7
    // for the O(1) outputs these inputs give (torch's float32 linear calls the same OpenBLAS sgemm and is off
    // by the same). 5e-6 is 10x that, and still catches any lower-precision accumulation (fp16/tf32: 1e-3)
    // or a wrong term (a missing or doubled product is O(1/sqrt(K)) >= 0.02 here).
    static final Tol GEMM = Tol.scaledMax(5e-6, "fp32 dot products vs the float64 result, K <= 2560");

    private static void linearCase(String label, HostArray x, HostArray w, HostArray b) {
        HostArray got;
        try (Tensor tx = x.toTensor(); Tensor tw = w.toTensor(); Tensor tb = b == null ? null : b.toTensor()) {
            got = run(() -> Ops.linear(tx, tw, tb));
        }
        Parity.assertCloseToExact(label, got, p -> TorchOracle.linear(p, x, w, b), GEMM);
    }

    @Test
    void linearSmallOddShapes() {
        SplittableRandom r = Seeds.rng("linearSmall");
        linearCase("linear [3,5,7]x[11,7]+b", HostArray.randn(r, 1, 3, 5, 7), HostArray.weight(r, 7, 11, 7),
                HostArray.randn(r, 1, 11));
        linearCase("linear [13,17]x[9,17] no bias", HostArray.randn(r, 1, 13, 17), HostArray.weight(r, 17, 9, 17), null);
        linearCase("linear [1,1]x[1,1]+b", HostArray.randn(r, 1, 1, 1), HostArray.randn(r, 1, 1, 1),
                HostArray.randn(r, 1, 1));
        linearCase("linear [2,3,4,33]x[5,33] (4-D x)", HostArray.randn(r, 1, 2, 3, 4, 33), HostArray.weight(r, 33, 5, 33),
                HostArray.randn(r, 1, 5));
    }

    @Test
    void linearStridedInputs() {
        SplittableRandom r = Seeds.rng("linearStrided");
        // x as a permuted view [5,3,7] -> [3,5,7] and w as a transposed view [7,11] -> [11,7]
        HostArray xb = HostArray.randn(r, 1, 5, 3, 7);
        HostArray wb = HostArray.weight(r, 7, 7, 11);
        HostArray b = HostArray.randn(r, 1, 11);
        HostArray got;
        try (Tensor txb = xb.toTensor(); Tensor tx = strided(txb.permute(1, 0, 2));
             Tensor twb = wb.toTensor(); Tensor tw = strided(twb.permute(1, 0)); Tensor tb = b.toTensor()) {
            got = run(() -> Ops.linear(tx, tw, tb));
        }
        Parity.assertCloseToExact("linear permuted x, transposed w", got,
                p -> TorchOracle.linear(p, xb.permute(1, 0, 2), wb.permute(1, 0), b), GEMM);

        // x narrowed along its last dim: rows of 7 values with a row stride of 20
        HostArray xn = HostArray.randn(r, 1, 4, 6, 20);
        HostArray w = HostArray.weight(r, 7, 9, 7);
        try (Tensor txb = xn.toTensor(); Tensor tx = strided(txb.narrow(2, 3, 7)); Tensor tw = w.toTensor()) {
            got = run(() -> Ops.linear(tx, tw, null));
        }
        Parity.assertCloseToExact("linear narrowed x [4,6,20][...,3:10]", got,
                p -> TorchOracle.linear(p, xn.narrow(2, 3, 7), w, null), GEMM);
    }

    @Test
    void linearSdxlShapes() {
        SplittableRandom r = Seeds.rng("linearSdxl");
        // attn2.to_k at 640 channels: the 77x2048 text context (CFG batch 2) projected, no bias
        linearCase("linear [2,77,2048]x[640,2048] (to_k)", HostArray.randn(r, 1, 2, 77, 2048),
                HostArray.weight(r, 2048, 640, 2048), null);
        // GEGLU proj at 1280 channels (32x32 latent tokens): 1280 -> 2 * 4 * 1280
        linearCase("linear [1,1024,1280]x[10240,1280]+b (GEGLU proj)", HostArray.randn(r, 1, 1, 1024, 1280),
                HostArray.weight(r, 1280, 10240, 1280), HostArray.randn(r, 0.1, 10240));
        // ff.net.2 at 640 channels: 2560 -> 640
        linearCase("linear [1,1024,2560]x[640,2560]+b (ff out)", HostArray.randn(r, 1, 1, 1024, 2560),
                HostArray.weight(r, 2560, 640, 2560), HostArray.randn(r, 0.1, 640));
    }

    private static void matmulCase(String label, HostArray a, HostArray b) {
        HostArray got;
        try (Tensor ta = a.toTensor(); Tensor tb = b.toTensor()) {
            got = run(() -> Ops.matmul(ta, tb));
        }
        Parity.assertCloseToExact(label, got, p -> TorchOracle.matmul(p, a, b), GEMM);
    }

    @Test
    void matmulSmallAndBroadcast() {
        SplittableRandom r = Seeds.rng("matmulSmall");
        matmulCase("matmul [33,65]x[65,17]", HostArray.randn(r, 1, 33, 65), HostArray.weight(r, 65, 65, 17));
        matmulCase("matmul [2,3,5,7]x[2,3,7,4]", HostArray.randn(r, 1, 2, 3, 5, 7), HostArray.randn(r, 1, 2, 3, 7, 4));
        matmulCase("matmul [2,1,5,7]x[3,7,4] (batch broadcast)", HostArray.randn(r, 1, 2, 1, 5, 7),
                HostArray.randn(r, 1, 3, 7, 4));
        matmulCase("matmul [2,3,5,7]x[7,4] (2-D b)", HostArray.randn(r, 1, 2, 3, 5, 7), HostArray.randn(r, 1, 7, 4));
        matmulCase("matmul [1,1]x[1,9]", HostArray.randn(r, 1, 1, 1), HostArray.randn(r, 1, 1, 9));
    }

    @Test
    void matmulTransposedViews() {
        SplittableRandom r = Seeds.rng("matmulViews");
        // b = k.transpose(-1, -2) of k [2,3,6,8]; a = a permuted from [2,5,3,8] ([B, L, H, D] -> [B, H, L, D])
        HostArray ab = HostArray.randn(r, 1, 2, 5, 3, 8);
        HostArray kb = HostArray.randn(r, 1, 2, 3, 6, 8);
        HostArray got;
        try (Tensor ta0 = ab.toTensor(); Tensor ta = strided(ta0.permute(0, 2, 1, 3));
             Tensor tk0 = kb.toTensor(); Tensor tk = strided(tk0.permute(0, 1, 3, 2))) {
            got = run(() -> Ops.matmul(ta, tk));
        }
        Parity.assertCloseToExact("matmul permuted a x transposed k", got,
                p -> TorchOracle.matmul(p, ab.permute(0, 2, 1, 3), kb.permute(0, 1, 3, 2)), GEMM);

        // SDXL cross-attention scores: q [2,10,1024,64] x k^T, k [2,10,77,64] viewed transposed
        HostArray q = HostArray.randn(r, 1, 2, 10, 1024, 64);
        HostArray k = HostArray.randn(r, 0.125, 2, 10, 77, 64);
        try (Tensor tq = q.toTensor(); Tensor tk0 = k.toTensor(); Tensor tk = strided(tk0.permute(0, 1, 3, 2))) {
            got = run(() -> Ops.matmul(tq, tk));
        }
        Parity.assertCloseToExact("matmul [2,10,1024,64]x[2,10,77,64]^T", got,
                p -> TorchOracle.matmul(p, q, k.permute(0, 1, 3, 2)), GEMM);
    }
}
