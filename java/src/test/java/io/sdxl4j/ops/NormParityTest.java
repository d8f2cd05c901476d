package io.sdxl4j.ops;

import static io.sdxl4j.ops.Ours.run;
import static io.sdxl4j.ops.Ours.strided;

import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** group_norm and layer_norm against torch::group_norm / torch::layer_norm. */
class NormParityTest {

    // Against the exact (float64) norm. Outputs are O(1) (times gamma); statistics run over up to 40960
    // values. We compute them and the affine in double, so we land on the exact result rounded to float (0
    // observed); torch's float32 norms are off by <= 1.5e-7 scaled, 8e-7 on the large-offset case. 2e-6
    // admits a float32-statistics implementation as good as torch's, and no wrong one (a wrong mean,
    // variance, eps or group assignment moves outputs by >= 1e-3).
    static final Tol NORM = Tol.scaledMax(2e-6, "vs the float64 norm: float32 rounding of O(1) outputs");

    private static void groupNormCase(String label, HostArray x, int groups, HostArray gamma, HostArray beta,
                                      float eps) {
        HostArray got;
        try (Tensor tx = x.toTensor(); Tensor tg = gamma == null ? null : gamma.toTensor();
             Tensor tb = beta == null ? null : beta.toTensor()) {
            got = run(() -> Ops.groupNorm(tx, groups, tg, tb, eps));
        }
        Parity.assertCloseToExact(label, got, p -> TorchOracle.groupNorm(p, x, groups, gamma, beta, eps), NORM);
    }

    private static HostArray gamma(SplittableRandom r, long c) {
        return HostArray.uniform(r, 0.5, 1.5, c);
    }

    @Test
    void groupNormSmall() {
        SplittableRandom r = Seeds.rng("groupNormSmall");
        groupNormCase("group_norm [2,6,5,7] g3 affine", HostArray.randn(r, 2, 2, 6, 5, 7), 3, gamma(r, 6),
                HostArray.randn(r, 1, 6), 1e-5f);
        groupNormCase("group_norm [2,6,5,7] g1 no affine", HostArray.randn(r, 2, 2, 6, 5, 7), 1, null, null, 1e-5f);
        groupNormCase("group_norm [1,9,4,4] g9 (instance norm)", HostArray.randn(r, 1, 1, 9, 4, 4), 9, gamma(r, 9),
                HostArray.randn(r, 1, 9), 1e-6f);
        groupNormCase("group_norm [3,9,11] g3 (1-D spatial)", HostArray.randn(r, 1, 3, 9, 11), 3, gamma(r, 9),
                HostArray.randn(r, 1, 9), 1e-5f);
        groupNormCase("group_norm [4,6] g2 (no spatial)", HostArray.randn(r, 1, 4, 6), 2, gamma(r, 6),
                HostArray.randn(r, 1, 6), 1e-5f);
        // a common offset 30x the spread: statistics must not cancel
        HostArray x = HostArray.randn(r, 0.5, 2, 6, 3, 5);
        float[] d = x.data();
        for (int i = 0; i < d.length; i++) {
            d[i] += 15f;
        }
        groupNormCase("group_norm [2,6,3,5] g3 offset 15 std 0.5", x, 3, gamma(r, 6), HostArray.randn(r, 1, 6), 1e-5f);
    }

    @Test
    void groupNormStridedInput() {
        SplittableRandom r = Seeds.rng("groupNormStrided");
        HostArray nhwc = HostArray.randn(r, 1, 2, 5, 4, 6);
        HostArray g = gamma(r, 6);
        HostArray b = HostArray.randn(r, 1, 6);
        HostArray got;
        try (Tensor t0 = nhwc.toTensor(); Tensor tx = strided(t0.permute(0, 3, 1, 2)); Tensor tg = g.toTensor();
             Tensor tb = b.toTensor()) {
            got = run(() -> Ops.groupNorm(tx, 3, tg, tb, 1e-5f));
        }
        Parity.assertCloseToExact("group_norm channels-last view [2,6,5,4] g3", got,
                p -> TorchOracle.groupNorm(p, nhwc.permute(0, 3, 1, 2), 3, g, b, 1e-5f), NORM);
    }

    @Test
    void groupNormSdxlShapes() {
        SplittableRandom r = Seeds.rng("groupNormSdxl");
        // resnet norms: 32 groups, eps 1e-5, at each level's width; transformer norm eps 1e-6
        groupNormCase("group_norm [1,320,64,64] g32", HostArray.randn(r, 1, 1, 320, 64, 64), 32, gamma(r, 320),
                HostArray.randn(r, 0.1, 320), 1e-5f);
        groupNormCase("group_norm [2,640,32,32] g32 eps1e-6", HostArray.randn(r, 1, 2, 640, 32, 32), 32, gamma(r, 640),
                HostArray.randn(r, 0.1, 640), 1e-6f);
        groupNormCase("group_norm [1,1280,16,16] g32", HostArray.randn(r, 3, 1, 1280, 16, 16), 32, gamma(r, 1280),
                HostArray.randn(r, 0.1, 1280), 1e-5f);
    }

    private static void layerNormCase(String label, HostArray x, HostArray gamma, HostArray beta, float eps) {
        HostArray got;
        try (Tensor tx = x.toTensor(); Tensor tg = gamma == null ? null : gamma.toTensor();
             Tensor tb = beta == null ? null : beta.toTensor()) {
            got = run(() -> Ops.layerNorm(tx, tg, tb, eps));
        }
        Parity.assertCloseToExact(label, got, p -> TorchOracle.layerNorm(p, x, gamma, beta, eps), NORM);
    }

    @Test
    void layerNormSmall() {
        SplittableRandom r = Seeds.rng("layerNormSmall");
        layerNormCase("layer_norm [3,5,7] affine", HostArray.randn(r, 2, 3, 5, 7), gamma(r, 7), HostArray.randn(r, 1, 7),
                1e-5f);
        layerNormCase("layer_norm [2,3,13] no affine", HostArray.randn(r, 1, 2, 3, 13), null, null, 1e-5f);
        layerNormCase("layer_norm [4,1] (D=1: beta)", HostArray.randn(r, 1, 4, 1), gamma(r, 1), HostArray.randn(r, 1, 1),
                1e-5f);
        layerNormCase("layer_norm [5] (1-D)", HostArray.randn(r, 1, 5), gamma(r, 5), null, 1e-5f);

        HostArray base = HostArray.randn(r, 1, 7, 3, 11);
        HostArray g = gamma(r, 7);
        HostArray b = HostArray.randn(r, 1, 7);
        HostArray got;
        try (Tensor t0 = base.toTensor(); Tensor tx = strided(t0.permute(1, 2, 0)); Tensor tg = g.toTensor();
             Tensor tb = b.toTensor()) {
            got = run(() -> Ops.layerNorm(tx, tg, tb, 1e-5f));
        }
        Parity.assertCloseToExact("layer_norm permuted view [3,11,7]", got,
                p -> TorchOracle.layerNorm(p, base.permute(1, 2, 0), g, b, 1e-5f), NORM);
    }

    @Test
    void layerNormSdxlShapes() {
        SplittableRandom r = Seeds.rng("layerNormSdxl");
        // transformer block norms over the 640 / 1280 channels; a norm over the 77x2048 context width
        layerNormCase("layer_norm [2,1024,640]", HostArray.randn(r, 1, 2, 1024, 640), gamma(r, 640),
                HostArray.randn(r, 0.1, 640), 1e-5f);
        layerNormCase("layer_norm [1,1024,1280]", HostArray.randn(r, 2, 1, 1024, 1280), gamma(r, 1280),
                HostArray.randn(r, 0.1, 1280), 1e-5f);
        layerNormCase("layer_norm [2,77,2048]", HostArray.randn(r, 1, 2, 77, 2048), gamma(r, 2048),
                HostArray.randn(r, 0.1, 2048), 1e-5f);
    }
}
