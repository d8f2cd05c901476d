package io.sdxl4j;

import java.util.function.Supplier;

/**
 * One finished denoising step.
 *
 * @param step           1-based count of steps done in this call
 * @param totalSteps     steps this call runs (after strength / denoising_start / denoising_end)
 * @param schedulerIndex position of the step in the scheduler's timesteps
 * @param timestep       the step's timestep
 * @param elapsedNanos   time since the call started (text encoding included)
 */
public record StepInfo(int step, int totalSteps, int schedulerIndex, double timestep, long elapsedNanos,
                       Supplier<float[]> latentsSupplier) {
    /** A copy of the latents after this step [B, 4, h, w] (UNet space, not divided by scaling_factor). */
    public float[] latents() {
        return latentsSupplier.get();
    }
}
