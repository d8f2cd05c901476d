package io.sdxl4j.bench;

import io.sdxl4j.DType;
import io.sdxl4j.Device;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.models.UNet2DConditionModel;
import io.sdxl4j.models.UNetConfig;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.TimeUnit;
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
 * Per-step latency of the real-size SDXL base UNet through the Java API, JNI included: one
 * {@link UNet2DConditionModel#forward} on the classifier-free-guidance batch of 2 (latents [2, 4, size/8, size/8],
 * context [2, 77, 2048], pooled [2, 1280], time ids [2, 6]), with random weights at the real shapes
 * ({@link UNetConfig#sdxlBase()}, seed 0: the same weights as the native runner {@code sdxl_unet_perf}), the
 * noise prediction copied back into a Java {@code float[]} as a Java caller would read it.
 *
 * <p>Not every combination of the parameters can run: the CPU computes in f32 only, and cuda needs a CUDA device.
 * Those fail in setup with a message saying so (JMH reports the failure and goes on to the next combination), so
 * pick the runnable ones with {@code -p}:
 * <pre>
 *   # the CPU (about a minute per step on 2 cores at 512x512; 10 GB of host RAM for the f32 weights)
 *   java -jar benchmarks/target/benchmarks.jar UNetStepBenchmark -p device=cpu -p dtype=f32 -p size=512 -wi 1 -i 3
 *   # a GPU: the project's promise is f16 (or bf16) at 1024x1024
 *   java -jar benchmarks/target/benchmarks.jar UNetStepBenchmark -p device=cuda -p dtype=f16,bf16,f32 -p size=512,1024
 * </pre>
 * {@link RunBenchmarks} without arguments runs one case chosen from what the machine has (cuda f16 1024 where a
 * device is usable, else cpu f32 512).
 */
@BenchmarkMode(Mode.AverageTime) // a denoising step's cost is the mean latency of one call
@OutputTimeUnit(TimeUnit.MILLISECONDS) // ~100 ms (a GPU) to ~a minute (2 CPU cores) per step
@Warmup(iterations = 2, time = 5) // the allocator's caches and cuDNN's algorithm choice settle in the first calls (the native runner also discards two); on the CPU each iteration is one call
@Measurement(iterations = 5, time = 10) // tens of calls per iteration on a GPU; on the CPU one call each (pass -i 3 there)
// One JVM per case. The weights (10 GB in f32) are native memory and the heap holds only the inputs, so the heap
// stays small; JavaCPP's guard (by default the process may not exceed 4 x -Xmx of physical memory when a native
// object is made) would otherwise refuse the CPU model under -Xmx1g, hence maxPhysicalBytes=0 (no limit).
@Fork(value = 1, jvmArgsAppend = {"-Xmx1g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0"})
public class UNetStepBenchmark {

    /** Classifier-free guidance runs the unconditional and conditional halves as one batch of 2. */
    static final int CFG_BATCH = 2;

    @State(Scope.Benchmark) // one model and one set of inputs per case, read-only; the forward is multi-threaded
    public static class StepState {
        /** cpu or cuda. */
        @Param({"cpu", "cuda"})
        public String device;

        /** The compute dtype: f32 (the only one on the CPU), f16 or bf16 (CUDA). */
        @Param({"f32", "f16", "bf16"})
        public String dtype;

        /** Image side in pixels; the latents are size/8 on a side. */
        @Param({"512", "1024"})
        public int size;

        /** Batch: fixed at 2 (CFG) for the figures the project quotes; {@code -p batch=1} for a single prompt. */
        @Param({"2"})
        public int batch;

        UNet2DConditionModel unet;
        Tensor sample;
        Tensor timestep;
        Tensor context;
        Tensor textEmbeds;
        Tensor timeIds;

        @Setup(Level.Trial) // the 2.6 G-parameter model is built and the inputs drawn once; only the forward is timed
        public void setup() {
            Sdxl4j.load();
            Device dev = Device.valueOf(device.toUpperCase(Locale.ROOT));
            DType dt = DType.valueOf(dtype.toUpperCase(Locale.ROOT));
            if (dev == Device.CPU && dt != DType.F32) {
                throw new IllegalStateException("skipped: the CPU computes in f32 only (device=cpu, dtype=" + dtype
                        + "); select runnable cases with -p device=cpu -p dtype=f32");
            }
            if (dev == Device.CUDA && !Sdxl4j.cudaAvailable()) {
                throw new IllegalStateException("skipped: no usable CUDA device (" + Sdxl4j.cudaStatus()
                        + "); on this machine select -p device=cpu -p dtype=f32");
            }
            if (size % 8 != 0 || size <= 0) {
                throw new IllegalArgumentException("size must be a positive multiple of 8, got " + size);
            }
            UNetConfig c = UNetConfig.sdxlBase();
            long t0 = System.nanoTime();
            unet = UNet2DConditionModel.random(c, 0, dev, dt);
            System.out.printf(Locale.ROOT, "%n[setup] SDXL base UNet, random weights, %s %s: built in %.1f s (%d threads)%n",
                    unet.device(), unet.dtype(), (System.nanoTime() - t0) / 1e9, Sdxl4j.numThreads());
            long h = size / 8;
            long pooled = c.projectionClassEmbeddingsInputDim() - 6 * c.additionTimeEmbedDim(); // 1280
            Random rnd = new Random(7);
            // Host f32 inputs, as the pipeline hands them over; forward converts and moves them (cheap: ~2 MB).
            sample = Tensor.of(ModelBenchmark.gaussian(rnd, (int) (batch * c.inChannels() * h * h), 1),
                    batch, c.inChannels(), h, h);
            float[] t = new float[batch];
            java.util.Arrays.fill(t, 500);
            timestep = Tensor.of(t, batch);
            context = Tensor.of(ModelBenchmark.gaussian(rnd, (int) (batch * 77 * c.crossAttentionDim()), 1),
                    batch, 77, c.crossAttentionDim());
            textEmbeds = Tensor.of(ModelBenchmark.gaussian(rnd, (int) (batch * pooled), 1), batch, pooled);
            float[] ids = new float[batch * 6];
            for (int i = 0; i < batch; i++) { // original size, crop top-left, target size
                System.arraycopy(new float[] {size, size, 0, 0, size, size}, 0, ids, 6 * i, 6);
            }
            timeIds = Tensor.of(ids, batch, 6);
        }

        @TearDown(Level.Trial) // native (and device) memory back before the next case's model is built
        public void tearDown() {
            for (AutoCloseable r : new AutoCloseable[] {sample, timestep, context, textEmbeds, timeIds, unet}) {
                if (r == null) {
                    continue; // setup refused this case
                }
                try {
                    r.close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    /** One denoising step's noise prediction [batch, 4, size/8, size/8], read back into Java. */
    @Benchmark
    public float[] step(StepState s) {
        try (Tensor eps = s.unet.forward(s.sample, s.timestep, s.context, s.textEmbeds, s.timeIds)) {
            return eps.toFloatArray(); // the copy into the Java heap is part of what a Java caller pays
        }
    }
}
