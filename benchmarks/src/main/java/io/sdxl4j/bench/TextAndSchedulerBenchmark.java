package io.sdxl4j.bench;

import io.sdxl4j.schedulers.Scheduler;
import io.sdxl4j.schedulers.SchedulerConfig;
import io.sdxl4j.text.ClipTokenizer;
import java.nio.file.Path;
import java.util.Map;
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
 * The per-request host work around the models: tokenizing a long prompt and computing a scheduler's
 * coefficient tables for 50 steps (set_timesteps). Both must stay far below a millisecond. Run from the
 * repository root (the tokenizer and scheduler config come from the reference copy, -Dsdxl4j.models overrides).
 */
@BenchmarkMode(Mode.AverageTime) // per-request latency
@OutputTimeUnit(TimeUnit.MICROSECONDS) // these take microseconds
@Warmup(iterations = 3, time = 1) // JIT the BPE and regex paths
@Measurement(iterations = 5, time = 1) // short operations: many calls per iteration
@Fork(1) // one JVM is representative for pure host code
@State(Scope.Benchmark) // read-only shared tokenizer; the scheduler is reset by every call
public class TextAndSchedulerBenchmark {
    @Param({"EulerDiscreteScheduler", "DPMSolverMultistepScheduler"})
    public String scheduler;

    private ClipTokenizer tokenizer;
    private String prompt300;
    private Scheduler sched;

    @Setup(Level.Trial) // loading vocab/merges is not what is measured
    public void setup() {
        Path models = Path.of(System.getProperty("sdxl4j.models", "java/src/test/resources/reference/models"));
        tokenizer = ClipTokenizer.load(models.resolve("tiny-sdxl-base/tokenizer"));
        StringBuilder sb = new StringBuilder();
        for (int i = 0; sb.length() < 1500; i++) {
            sb.append("a highly detailed photograph of a red fox number ").append(i).append(", cinematic lighting, ");
        }
        prompt300 = sb.toString();
        Path config = models.resolveSibling("configs/sdxl-base-1.0/scheduler/scheduler_config.json");
        sched = Scheduler.create(SchedulerConfig.fromConfig(scheduler, config, Map.of()));
    }

    @TearDown(Level.Trial) // native scheduler released after the run
    public void tearDown() {
        sched.close();
    }

    /** BPE-tokenize a ~300-token prompt (untruncated ids, as long-prompt chunking needs). */
    @Benchmark
    public long[] tokenize300() {
        return tokenizer.untruncated(prompt300);
    }

    /** All timesteps/sigmas/coefficients for 50 steps. */
    @Benchmark
    public double[] setTimesteps50() {
        sched.setTimesteps(50);
        return sched.timesteps();
    }
}
