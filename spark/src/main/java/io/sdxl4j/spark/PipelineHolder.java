package io.sdxl4j.spark;

import io.sdxl4j.StableDiffusionXL;
import java.nio.file.Path;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The executor JVM's pipelines: loaded on first use, one per {@link GenerateOptions#pipelineKey}, then reused by every
 * task and partition that runs in this JVM (Spark runs tasks as threads of one executor process). Never closed
 * before the JVM exits: the next job on the executor reuses it.
 */
final class PipelineHolder {
    private static final ConcurrentHashMap<String, StableDiffusionXL> PIPELINES = new ConcurrentHashMap<>();
    private static final AtomicInteger LOADS = new AtomicInteger();

    private PipelineHolder() {
    }

    static StableDiffusionXL get(GenerateOptions options) {
        // computeIfAbsent: concurrent tasks of one executor wait for the single load instead of loading twice.
        return PIPELINES.computeIfAbsent(options.pipelineKey(), k -> {
            LOADS.incrementAndGet();
            return StableDiffusionXL.load(Path.of(options.modelPath()), options.pipelineOptions());
        });
    }

    static int loads() {
        return LOADS.get();
    }
}
