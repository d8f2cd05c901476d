package io.sdxl4j.spark;

import io.sdxl4j.DType;
import io.sdxl4j.Device;
import io.sdxl4j.PipelineOptions;
import java.io.Serializable;
import java.util.Objects;

/**
 * How {@link Sdxl4jSpark#generate} runs: the model folder every executor loads (a path readable on every executor,
 * e.g. on a shared file system or shipped with {@code --files}/{@code --archives}), the device, the defaults used
 * where a row leaves a column out or null, the job seed rows without a seed derive theirs from, and whether a bad
 * row fails the job. Serializable: Spark ships it to the executors with the task.
 */
public final class GenerateOptions implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String modelPath;
    private final String device;
    private final String dtype;
    private final int steps;
    private final int width;
    private final int height;
    private final double guidanceScale;
    private final String scheduler;
    private final String negativePrompt;
    private final long jobSeed;
    private final boolean failOnError;
    /** Test hook: partition whose first attempt throws after its first row (-1: none). Package-private on purpose. */
    int failFirstAttemptOfPartition = -1;

    private GenerateOptions(Builder b) {
        this.modelPath = Objects.requireNonNull(b.modelPath, "modelPath");
        this.device = b.device;
        this.dtype = b.dtype;
        this.steps = b.steps;
        this.width = b.width;
        this.height = b.height;
        this.guidanceScale = b.guidanceScale;
        this.scheduler = b.scheduler;
        this.negativePrompt = b.negativePrompt;
        this.jobSeed = b.jobSeed;
        this.failOnError = b.failOnError;
    }

    public static Builder builder(String modelPath) {
        return new Builder(modelPath);
    }

    public String modelPath() { return modelPath; }
    public String device() { return device; }
    public String dtype() { return dtype; }
    public int steps() { return steps; }
    public int width() { return width; }
    public int height() { return height; }
    public double guidanceScale() { return guidanceScale; }
    public String scheduler() { return scheduler; }
    public String negativePrompt() { return negativePrompt; }
    public long jobSeed() { return jobSeed; }
    public boolean failOnError() { return failOnError; }

    /** The pipeline options every executor loads the model with. */
    PipelineOptions pipelineOptions() {
        return PipelineOptions.defaults().withDevice(Device.valueOf(device)).withDtype(DType.valueOf(dtype));
    }

    /** What makes two pipelines interchangeable: executors share one pipeline per distinct key. */
    String pipelineKey() {
        return modelPath + "|" + device + "|" + dtype;
    }

    /** Builder; defaults: CPU, F32, 30 steps, 1024x1024, CFG 5, "Euler a", no negative prompt, job seed 0. */
    public static final class Builder {
        private final String modelPath;
        private String device = "CPU";
        private String dtype = "F32";
        private int steps = 30;
        private int width = 1024;
        private int height = 1024;
        private double guidanceScale = 5.0;
        private String scheduler = "Euler a";
        private String negativePrompt;
        private long jobSeed;
        private boolean failOnError;

        private Builder(String modelPath) {
            this.modelPath = modelPath;
        }

        /** CPU or CUDA (the executor's GPU: see the README's Spark section). */
        public Builder device(Device d) { this.device = d.name(); return this; }
        public Builder dtype(DType t) { this.dtype = t.name(); return this; }
        public Builder steps(int n) { this.steps = n; return this; }
        public Builder size(int width, int height) { this.width = width; this.height = height; return this; }
        public Builder guidanceScale(double g) { this.guidanceScale = g; return this; }
        /** Any name {@link io.sdxl4j.SchedulerKind#fromName} knows. */
        public Builder scheduler(String s) { this.scheduler = s; return this; }
        public Builder negativePrompt(String p) { this.negativePrompt = p; return this; }
        /** Rows without a seed get one derived from this and their id. */
        public Builder jobSeed(long s) { this.jobSeed = s; return this; }
        /** true: a bad row fails its task (and, after Spark's retries, the job) instead of filling the error column. */
        public Builder failOnError(boolean f) { this.failOnError = f; return this; }

        public GenerateOptions build() {
            return new GenerateOptions(this);
        }
    }
}
