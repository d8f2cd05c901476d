package io.sdxl4j.ops;

import static io.sdxl4j.ops.Ours.run;
import static io.sdxl4j.ops.Ours.strided;

import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** conv2d against torch::conv2d; nearest upsampling against torch::upsample_nearest2d (F.interpolate). */
class ConvUpsampleParityTest {

    // conv2d is a GEMM over K = C*kh*kw products per output (im2col + sgemm), K up to 11520 (1280 x 3 x 3):
    // against the exact (float64) convolution we observe <= 7e-7, torch's own float32 conv2d 4e-6 (at
    // K = 11520). Same bound and reasoning as LinearMatmulParityTest.GEMM.
    static final Tol CONV = Tol.scaledMax(5e-6, "fp32 dot products of length C*kh*kw vs the float64 result");
    // Nearest upsampling copies values: any difference is a wrong source index.
    static final Tol COPY = Tol.bitwise("nearest upsampling only copies values");

    private static void convCase(String label, HostArray x, HostArray w, HostArray b, int stride, int padding) {
        HostArray got;
        try (Tensor tx = x.toTensor(); Tensor tw = w.toTensor(); Tensor tb = b == null ? null : b.toTensor()) {
            got = run(() -> Ops.conv2d(tx, tw, tb, stride, padding));
        }
        Parity.assertCloseToExact(label, got, p -> TorchOracle.conv2d(p, x, w, b, stride, padding), CONV);
    }

    private static HostArray w(SplittableRandom r, long o, long c, long kh, long kw) {
        return HostArray.weight(r, c * kh * kw, o, c, kh, kw);
    }

    @Test
    void convSmallOddShapes() {
        SplittableRandom r = Seeds.rng("convSmall");
        HostArray x = HostArray.randn(r, 1, 2, 3, 9, 11);
        HostArray b = HostArray.randn(r, 1, 5);
        convCase("conv 3x3 s1 p1 [2,3,9,11]->5", x, w(r, 5, 3, 3, 3), b, 1, 1);
        convCase("conv 3x3 s1 p0 [2,3,9,11]->5", x, w(r, 5, 3, 3, 3), b, 1, 0);
        convCase("conv 3x3 s2 p1 [2,3,9,11]->5", x, w(r, 5, 3, 3, 3), b, 2, 1);
        convCase("conv 3x3 s2 p0 [2,3,9,11]->5 no bias", x, w(r, 5, 3, 3, 3), null, 2, 0);
        convCase("conv 1x1 s1 p0 [2,3,9,11]->4", x, w(r, 4, 3, 1, 1), HostArray.randn(r, 1, 4), 1, 0);
        convCase("conv 1x1 s2 p0 [2,3,9,11]->4 no bias", x, w(r, 4, 3, 1, 1), null, 2, 0);
        convCase("conv 1x1 s1 p1 [2,3,9,11]->4 (padded 1x1)", x, w(r, 4, 3, 1, 1), null, 1, 1);
        convCase("conv 2x3 s2 p2 [2,3,9,11]->4 (non-square kernel)", x, w(r, 4, 3, 2, 3), HostArray.randn(r, 1, 4), 2, 2);
        convCase("conv 3x3 s3 p1 [1,2,4,5]->3", HostArray.randn(r, 1, 1, 2, 4, 5), w(r, 3, 2, 3, 3), null, 3, 1);
        convCase("conv 3x3 s1 p1 [1,1,1,1]->1", HostArray.randn(r, 1, 1, 1, 1, 1), w(r, 1, 1, 3, 3),
                HostArray.randn(r, 1, 1), 1, 1);
    }

    @Test
    void convStridedInput() {
        SplittableRandom r = Seeds.rng("convStrided");
        // an NHWC buffer seen as NCHW (a channels-last view), and a channel slice of a larger tensor
        HostArray nhwc = HostArray.randn(r, 1, 2, 7, 6, 5);
        HostArray wt = w(r, 4, 5, 3, 3);
        HostArray b = HostArray.randn(r, 1, 4);
        HostArray got;
        try (Tensor t0 = nhwc.toTensor(); Tensor tx = strided(t0.permute(0, 3, 1, 2)); Tensor tw = wt.toTensor();
             Tensor tb = b.toTensor()) {
            got = run(() -> Ops.conv2d(tx, tw, tb, 1, 1));
        }
        Parity.assertCloseToExact("conv 3x3 on channels-last view", got,
                p -> TorchOracle.conv2d(p, nhwc.permute(0, 3, 1, 2), wt, b, 1, 1), CONV);

        HostArray big = HostArray.randn(r, 1, 2, 9, 8, 8);
        HostArray w1 = w(r, 6, 5, 1, 1);
        try (Tensor t0 = big.toTensor(); Tensor tx = strided(t0.narrow(1, 2, 5)); Tensor tw = w1.toTensor()) {
            got = run(() -> Ops.conv2d(tx, tw, null, 1, 0));
        }
        Parity.assertCloseToExact("conv 1x1 on channel slice [:,2:7]", got,
                p -> TorchOracle.conv2d(p, big.narrow(1, 2, 5), w1, null, 1, 0), CONV);
    }

    @Test
    void convSdxlShapes() {
        SplittableRandom r = Seeds.rng("convSdxl");
        // conv_in: 4 latent channels -> 320 at 128x128 (a 1024x1024 image)
        convCase("conv_in 3x3 [1,4,128,128]->320", HostArray.randn(r, 1, 1, 4, 128, 128), w(r, 320, 4, 3, 3),
                HostArray.randn(r, 0.1, 320), 1, 1);
        // resnet convs at each level's width (spatial sizes reduced from 128/64/32 to keep the suite fast)
        convCase("resnet conv 3x3 [1,320,64,64]->320", HostArray.randn(r, 1, 1, 320, 64, 64), w(r, 320, 320, 3, 3),
                HostArray.randn(r, 0.1, 320), 1, 1);
        convCase("resnet conv 3x3 [1,640,32,32]->640", HostArray.randn(r, 1, 1, 640, 32, 32), w(r, 640, 640, 3, 3),
                HostArray.randn(r, 0.1, 640), 1, 1);
        convCase("resnet conv 3x3 [1,1280,16,16]->1280", HostArray.randn(r, 1, 1, 1280, 16, 16),
                w(r, 1280, 1280, 3, 3), HostArray.randn(r, 0.1, 1280), 1, 1);
        // Downsample2D: 3x3 stride 2 padding 1
        convCase("downsample 3x3 s2 [1,320,64,64]->320", HostArray.randn(r, 1, 1, 320, 64, 64), w(r, 320, 320, 3, 3),
                HostArray.randn(r, 0.1, 320), 2, 1);
        // resnet conv_shortcut 640 -> 1280 (1x1)
        convCase("conv_shortcut 1x1 [2,640,32,32]->1280", HostArray.randn(r, 1, 2, 640, 32, 32), w(r, 1280, 640, 1, 1),
                HostArray.randn(r, 0.1, 1280), 1, 0);
    }

    private static void upsampleCase(String label, HostArray x, long outH, long outW) {
        HostArray ref = TorchOracle.upsampleNearest(x, outH, outW);
        HostArray got;
        try (Tensor tx = x.toTensor()) {
            got = run(() -> Ops.upsampleNearest(tx, outH, outW));
        }
        Parity.assertClose(label, got, ref, COPY);
    }

    @Test
    void upsampleNearestShapes() {
        SplittableRandom r = Seeds.rng("upsample");
        HostArray x = HostArray.randn(r, 1, 2, 3, 5, 7);
        upsampleCase("upsample [2,3,5,7]->10x14", x, 10, 14);
        // non-integer ratios tell torch's "nearest" floor(dst * in / out) from "nearest-exact" (dst + 1/2)
        upsampleCase("upsample [2,3,5,7]->11x13 (non-integer)", x, 11, 13);
        upsampleCase("upsample [1,2,6,4]->4x6 (x2/3, x3/2)", HostArray.randn(r, 1, 1, 2, 6, 4), 4, 6);
        upsampleCase("upsample [2,3,5,7]->15x21 (x3)", x, 15, 21);
        upsampleCase("upsample [2,3,5,7]->3x4 (shrink)", x, 3, 4);
        upsampleCase("upsample [2,3,5,7]->5x7 (identity)", x, 5, 7);
        upsampleCase("upsample [1,2,7,3]->1x1", HostArray.randn(r, 1, 1, 2, 7, 3), 1, 1);
        upsampleCase("upsample [1,1,13,17]->29x31 (odd)", HostArray.randn(r, 1, 1, 1, 13, 17), 29, 31);
        // a few sizes where float32 in/out scales round awkwardly (torch computes the scale in float)
        upsampleCase("upsample [1,1,3,7]->77x48", HostArray.randn(r, 1, 1, 1, 3, 7), 77, 48);
        upsampleCase("upsample [1,1,96,40]->97x100", HostArray.randn(r, 1, 1, 1, 96, 40), 97, 100);
    }

    @Test
    void upsample2xStridedAndSdxl() {
        SplittableRandom r = Seeds.rng("upsample2x");
        HostArray nhwc = HostArray.randn(r, 1, 2, 5, 6, 3);
        HostArray ref = TorchOracle.upsampleNearest2x(nhwc.permute(0, 3, 1, 2));
        HostArray got;
        try (Tensor t0 = nhwc.toTensor(); Tensor tx = strided(t0.permute(0, 3, 1, 2))) {
            got = run(() -> Ops.upsampleNearest2x(tx));
        }
        Parity.assertClose("upsample2x channels-last view [2,3,5,6]", got, ref, COPY);

        // Upsample2D of the up blocks: 1280 channels 32->64, 640 channels 64->128 (CFG batch 2)
        for (long[] s : new long[][] {{2, 1280, 32, 32}, {2, 640, 64, 64}}) {
            HostArray x = HostArray.randn(r, 1, s);
            ref = TorchOracle.upsampleNearest2x(x);
            try (Tensor tx = x.toTensor()) {
                got = run(() -> Ops.upsampleNearest2x(tx));
            }
            Parity.assertClose("upsample2x [" + s[0] + "," + s[1] + "," + s[2] + "," + s[3] + "]", got, ref, COPY);
        }
    }
}
