package io.sdxl4j;

import java.util.Locale;

/**
 * The sampling settings the distilled few-step SDXL models are made for, as their model cards give them for
 * diffusers: classifier-free guidance off (guidance_scale 0), "trailing" timestep spacing, and a handful of
 * steps. Using them with other settings gives washed-out or noisy images, so the CLI ({@code --preset}) and
 * {@link #apply} set all three at once; an explicit steps/guidance/scheduler still wins in the CLI.
 */
public enum FewStepPreset {
    /** SDXL-Turbo (stabilityai/sdxl-turbo): Euler ancestral, trailing, 1 step (up to 4), trained at 512x512. */
    TURBO(1, SchedulerKind.EULER_A_TRAILING),
    /** SDXL-Lightning (ByteDance, 2/4/8-step checkpoints or LoRAs): Euler, trailing; 4 steps here. */
    LIGHTNING(4, SchedulerKind.EULER_TRAILING),
    /** Hyper-SDXL 8-step (ByteDance): DDIM, trailing, 8 steps. */
    HYPER(8, SchedulerKind.DDIM_TRAILING);

    private final int steps;
    private final SchedulerKind scheduler;

    FewStepPreset(int steps, SchedulerKind scheduler) {
        this.steps = steps;
        this.scheduler = scheduler;
    }

    public int steps() {
        return steps;
    }

    public SchedulerKind scheduler() {
        return scheduler;
    }

    /** 0: classifier-free guidance off (diffusers runs no CFG for guidance_scale <= 1). */
    public double guidanceScale() {
        return 0.0;
    }

    /** The request with this preset's steps, guidance and scheduler. */
    public GenerationRequest apply(GenerationRequest request) {
        return request.toBuilder().steps(steps).guidanceScale(guidanceScale()).scheduler(scheduler).build();
    }

    /**
     * "turbo", "lightning" or "hyper" (any case).
     *
     * @throws SdxlException INVALID_ARGUMENT naming the presets
     */
    public static FewStepPreset fromName(String name) {
        for (FewStepPreset p : values()) {
            if (p.name().equalsIgnoreCase(name == null ? "" : name.trim())) {
                return p;
            }
        }
        throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "unknown preset \"" + name + "\"; use turbo, lightning or hyper");
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
