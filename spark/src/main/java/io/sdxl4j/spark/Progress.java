package io.sdxl4j.spark;

import java.io.Serializable;
import org.apache.spark.SparkContext;
import org.apache.spark.util.LongAccumulator;

/**
 * A job's progress as named Spark accumulators, shown in the Spark UI's stage pages and readable on the driver:
 * "sdxl4j images" (images made), "sdxl4j steps" (denoising steps run) and "sdxl4j generation ms" (time spent in
 * the pipeline, summed over tasks). As for any accumulator updated in a transformation, a retried or speculative task
 * counts again, and nothing is counted before an action runs the job.
 */
public final class Progress implements Serializable {
    private static final long serialVersionUID = 1L;
    private final LongAccumulator images;
    private final LongAccumulator steps;
    private final LongAccumulator millis;

    private Progress(SparkContext sc) {
        images = sc.longAccumulator("sdxl4j images");
        steps = sc.longAccumulator("sdxl4j steps");
        millis = sc.longAccumulator("sdxl4j generation ms");
    }

    /** New accumulators registered with {@code sc} (on the driver). */
    public static Progress register(SparkContext sc) {
        return new Progress(sc);
    }

    public long images() { return images.value(); }
    public long steps() { return steps.value(); }
    public long generationMillis() { return millis.value(); }

    /**
     * Denoising steps per second of pipeline time: the per-pipeline (per-GPU) rate, since the time is summed over the
     * tasks; the job's rate is about this times the number of pipelines working at once. NaN before anything ran.
     */
    public double stepsPerSecond() {
        long ms = millis.value();
        return ms == 0 ? Double.NaN : steps.value() * 1000.0 / ms;
    }

    /** Called on the executor after each image. */
    void add(int stepsRun, long nanos) {
        images.add(1);
        steps.add(stepsRun);
        millis.add(nanos / 1_000_000);
    }

    @Override
    public String toString() {
        return String.format("%d images, %d steps, %.1f steps/s per pipeline", images(), steps(), stepsPerSecond());
    }
}
