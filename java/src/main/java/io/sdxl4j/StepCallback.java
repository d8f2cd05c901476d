package io.sdxl4j;

/**
 * Called after every denoising step (diffusers' {@code callback_on_step_end}), on the generating thread. Throwing
 * stops the generation; to stop it from elsewhere use a {@link CancellationToken}.
 */
@FunctionalInterface
public interface StepCallback {
    void onStep(StepInfo step);
}
