package io.sdxl4j.bench;

import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.Generator;
import io.sdxl4j.StableDiffusionXL;
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
 * The whole SDXL base pipeline on the tiny model (CPU, fp32): one generation end to end (text encoders, the
 * denoising loop with classifier-free guidance, VAE decode, postprocess) at a few step counts, so that
 * per-step latency is the slope between them and the fixed cost the intercept. The tiny model measures our
 * overhead around the models (JNI, Java-side text and array work, the native loop), not SDXL's arithmetic.
 */
@BenchmarkMode(Mode.AverageTime) // a request's latency is what a service sees
@OutputTimeUnit(TimeUnit.MILLISECONDS) // tens of milliseconds per generation on the tiny model
@Warmup(iterations = 3, time = 2) // lets the tokenizer cache, thread pool and allocator settle
@Measurement(iterations = 5, time = 2) // dozens of generations per iteration: tight error bars
@Fork(1) // the native library is loaded once per JVM; one fork is enough for a latency figure
@State(Scope.Benchmark)
public class PipelineBenchmark {
    /** Denoising steps: the difference between 4 and 20 steps divided by 16 is the cost of one step. */
    @Param({"4", "20"})
    int steps;

    private StableDiffusionXL pipeline;
    private GenerationRequest request;

    @Setup(Level.Trial)
    public void load() {
        pipeline = StableDiffusionXL.load(ModelBenchmark.modelsDir().resolve("tiny-sdxl-base"));
        request = GenerationRequest.builder().prompt("a photo of a cat").negativePrompt("blurry").steps(steps)
                .size(64, 64).build();
    }

    @TearDown(Level.Trial)
    public void close() {
        pipeline.close();
    }

    /** text -> image, 64x64, guidance 5 (UNet batch of 2). */
    @Benchmark
    public GenerationResult textToImage() {
        try (Generator g = Generator.seeded(0)) {
            return pipeline.generate(request, g, null, null);
        }
    }

    /** The same to latents only (no VAE decode): what the base costs in an ensemble with the refiner. */
    @Benchmark
    public GenerationResult textToLatents() {
        try (Generator g = Generator.seeded(0)) {
            return pipeline.generate(request.toBuilder().output(GenerationRequest.Output.LATENT).build(), g, null, null);
        }
    }
}
