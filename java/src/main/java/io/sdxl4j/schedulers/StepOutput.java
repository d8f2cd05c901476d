package io.sdxl4j.schedulers;

import io.sdxl4j.Tensor;

/** A scheduler step's result; predOriginalSample is null for classes whose step has none. */
public record StepOutput(Tensor prevSample, Tensor predOriginalSample) implements AutoCloseable {
    @Override
    public void close() {
        prevSample.close();
        if (predOriginalSample != null) {
            predOriginalSample.close();
        }
    }
}
