package io.sdxl4j.bench;

import io.sdxl4j.Ops;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * CPU conv2d and matmul at SDXL widths, sdxl4j and LibTorch side by side on the same inputs in the same run
 * (RunBenchmarks prints the ratio). Both use every core: sdxl4j its thread pool + OpenBLAS, LibTorch its own.
 */
@BenchmarkMode(Mode.AverageTime) // per-op latency is what a denoising step adds up
@OutputTimeUnit(TimeUnit.MILLISECONDS) // these ops take milliseconds to a few hundred
@Warmup(iterations = 2, time = 2) // BLAS thread pools and caches settle after a few calls
@Measurement(iterations = 4, time = 2) // each call is long; a few seconds per iteration is enough
@Fork(1) // one JVM: both libraries load into it, so they are measured under the same conditions
@State(Scope.Benchmark) // inputs are shared read-only; the ops themselves are multi-threaded
public class CpuOpsBenchmark {
    /**
     * conv3x3_C_HxW: SDXL ResnetBlock2D conv (C -> C, 3x3, padding 1) at the latent size of that level
     * (1024x1024 image = 128x128 latent: 320 ch at 128, 640 at 64, 1280 at 32; halved here to keep runs short).
     * linear_T_I_O: tokens x in -> out, e.g. attention projections at the 640 level, GEGLU's 640 -> 5120.
     */
    @Param({"conv3x3_320_64x64", "conv3x3_640_32x32", "conv3x3_1280_16x16", "linear_4096_640_640",
        "linear_1024_1280_10240", "linear_77_2048_640"})
    public String shape;

    private Tensor x;
    private Tensor w;
    private Tensor b;
    private org.bytedeco.pytorch.Tensor tx;
    private org.bytedeco.pytorch.Tensor tw;
    private org.bytedeco.pytorch.Tensor tb;
    private NoGradGuard noGrad;
    private boolean conv;

    @Setup(Level.Trial) // inputs made once per shape; only the op is timed
    public void setup() {
        Sdxl4j.load();
        TorchSupport.load();
        noGrad = new NoGradGuard();
        String[] p = shape.split("_");
        Random rnd = new Random(42);
        long[] xs;
        long[] ws;
        long[] bs;
        if (p[0].equals("conv3x3")) {
            conv = true;
            long c = Long.parseLong(p[1]);
            String[] hw = p[2].split("x");
            xs = new long[] {1, c, Long.parseLong(hw[0]), Long.parseLong(hw[1])};
            ws = new long[] {c, c, 3, 3};
            bs = new long[] {c};
        } else {
            xs = new long[] {Long.parseLong(p[1]), Long.parseLong(p[2])};
            ws = new long[] {Long.parseLong(p[3]), Long.parseLong(p[2])};
            bs = new long[] {Long.parseLong(p[3])};
        }
        float[] xv = random(rnd, xs);
        float[] wv = random(rnd, ws);
        float[] bv = random(rnd, bs);
        x = Tensor.of(xv, xs);
        w = Tensor.of(wv, ws);
        b = Tensor.of(bv, bs);
        tx = torchOf(xv, xs);
        tw = torchOf(wv, ws);
        tb = torchOf(bv, bs);
    }

    private static float[] random(Random rnd, long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian() * 0.05f;
        }
        return v;
    }

    private static org.bytedeco.pytorch.Tensor torchOf(float[] v, long[] shape) {
        org.bytedeco.pytorch.Tensor t = torch.empty(shape);
        t.data_ptr_float().put(v);
        return t;
    }

    @TearDown(Level.Trial) // native memory back after each shape
    public void tearDown() {
        x.close();
        w.close();
        b.close();
        tx.close();
        tw.close();
        tb.close();
        noGrad.close();
    }

    @Benchmark
    public Tensor sdxl4j() {
        Tensor y = conv ? Ops.conv2d(x, w, b, 1, 1) : Ops.linear(x, w, b);
        y.close(); // freeing is part of the cost, as in a real step
        return y;
    }

    @Benchmark
    public org.bytedeco.pytorch.Tensor libtorch() {
        org.bytedeco.pytorch.Tensor y = conv
                ? torch.conv2d(tx, tw, new TensorOptional(tb), new long[] {1, 1}, new long[] {1, 1}, new long[] {1, 1}, 1)
                : torch.linear(tx, tw, new TensorOptional(tb));
        y.close();
        return y;
    }
}
