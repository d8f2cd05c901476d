package io.sdxl4j.spark;

import io.sdxl4j.Device;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import java.nio.file.Path;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;

/**
 * The executor JVM's pipelines: loaded on first use, one per {@link GenerateOptions#pipelineKey}, then reused by every
 * task and partition that runs in this JVM (Spark runs tasks as threads of one executor process). Never closed
 * before the JVM exits: the next job on the executor reuses it. On CUDA, the GPU is the one Spark assigned to the
 * task (GPU scheduling), made this process's CUDA device before the load.
 */
final class PipelineHolder {
    private static final ConcurrentHashMap<String, StableDiffusionXL> PIPELINES = new ConcurrentHashMap<>();
    private static final AtomicInteger LOADS = new AtomicInteger();

    private PipelineHolder() {
    }

    static StableDiffusionXL get(GenerateOptions options) {
        if (Device.valueOf(options.device()) == Device.CUDA) {
            TaskContext task = TaskContext.get();
            if (task != null) {
                useAssignedGpu(task.resourcesJMap(), Sdxl4j::selectCudaDevice);
            }
        }
        // computeIfAbsent: concurrent tasks of one executor wait for the single load instead of loading twice.
        return PIPELINES.computeIfAbsent(options.pipelineKey(), k -> {
            LOADS.incrementAndGet();
            return StableDiffusionXL.load(Path.of(options.modelPath()), options.pipelineOptions());
        });
    }

    /**
     * Selects the task's GPU (the first address of its "gpu" resource) when Spark assigned one; every task does, so
     * an executor given several GPUs fails with the core's one-device-per-process message instead of quietly sharing
     * one. Without GPU scheduling (local mode, no resource configs) nothing is selected: the process's device stays.
     */
    static OptionalInt useAssignedGpu(Map<String, ResourceInformation> resources, IntConsumer select) {
        ResourceInformation gpu = resources == null ? null : resources.get("gpu");
        if (gpu == null || gpu.addresses().length == 0) {
            return OptionalInt.empty();
        }
        String address = gpu.addresses()[0].trim();
        int ordinal;
        try {
            ordinal = Integer.parseInt(address);
        } catch (NumberFormatException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "Spark assigned GPU address \"" + address + "\", not a "
                    + "CUDA device number: the GPU discovery script must print device ordinals (0, 1, ...), as Spark's "
                    + "getGpusResources.sh does", e);
        }
        select.accept(ordinal);
        return OptionalInt.of(ordinal);
    }

    static int loads() {
        return LOADS.get();
    }
}
