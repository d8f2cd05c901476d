package io.sdxl4j.schedulers;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.Generator;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeScheduler;
import io.sdxl4j.nat.NativeSchedulerConfig;
import io.sdxl4j.nat.NativeTensorList;
import io.sdxl4j.nat.StringVector;
import java.util.ArrayList;
import java.util.List;

/**
 * A diffusers scheduler in the native core, driven by step index:
 * <pre>
 * s.setTimesteps(n); x = x * s.initNoiseSigma();
 * for (int i = 0; i < s.timesteps().length; i++) { in = s.scaleModelInput(x, i); eps = unet(in, t[i]); x = s.step(eps, i, x, g).prevSample(); }
 * </pre>
 */
public final class Scheduler implements AutoCloseable {
    private NativeScheduler handle;
    private final SchedulerConfig config;

    private Scheduler(NativeScheduler handle, SchedulerConfig config) {
        this.handle = handle;
        this.config = config;
    }

    public static Scheduler create(SchedulerConfig config) {
        Sdxl4j.load();
        return Native.call(() -> {
            try (NativeSchedulerConfig c = config.toNative()) {
                return new Scheduler(NativeScheduler.create(c), config);
            }
        });
    }

    /** The diffusers class names this build implements. */
    public static List<String> supportedClasses() {
        Sdxl4j.load();
        return Native.call(() -> {
            try (StringVector v = NativeScheduler.supported_classes()) {
                List<String> out = new ArrayList<>();
                for (long i = 0; i < v.size(); i++) {
                    out.add(v.get(i).getString());
                }
                return out;
            }
        });
    }

    /** The native handle, for calls into io.sdxl4j.nat (e.g. the pipeline's denoiser). Internal. */
    public NativeScheduler handle() {
        return h();
    }

    private NativeScheduler h() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "scheduler is closed");
        }
        return handle;
    }

    public SchedulerConfig config() {
        return config;
    }

    public void setTimesteps(int numInferenceSteps) {
        Native.run(() -> h().set_timesteps(numInferenceSteps));
    }

    public double[] timesteps() {
        return Native.call(() -> h().timesteps().get());
    }

    public double[] sigmas() {
        return Native.call(() -> h().sigmas().get());
    }

    public double initNoiseSigma() {
        return Native.call(() -> h().init_noise_sigma());
    }

    public int order() {
        return Native.call(() -> h().order());
    }

    public Tensor scaleModelInput(Tensor sample, int stepIndex) {
        return Native.call(() -> Tensor.wrap(h().scale_model_input(sample.handle(), stepIndex)));
    }

    /** One step; the generator (null for deterministic classes) supplies the noise stochastic classes draw. */
    public StepOutput step(Tensor modelOutput, int stepIndex, Tensor sample, Generator generator) {
        return Native.call(() -> {
            try (NativeTensorList out = h().step(modelOutput.handle(), stepIndex, sample.handle(),
                    generator == null ? null : generator.handle())) {
                Tensor prev = Tensor.wrap(out.get(0));
                var pred = out.get(1);
                if (pred.defined()) {
                    return new StepOutput(prev, Tensor.wrap(pred));
                }
                pred.close();
                return new StepOutput(prev, null);
            }
        });
    }

    /** diffusers add_noise at timesteps()[stepIndex] (img2img). */
    public Tensor addNoise(Tensor original, Tensor noise, int stepIndex) {
        return Native.call(() -> Tensor.wrap(h().add_noise(original.handle(), noise.handle(), stepIndex)));
    }

    /** How many timesteps the base pipeline runs with {@code denoising_end}. */
    public int stepsBeforeDenoisingEnd(double denoisingEnd) {
        return (int) (long) Native.call(() -> h().steps_before_denoising_end(denoisingEnd));
    }

    /** Where the refiner starts with {@code denoising_start} (diffusers get_timesteps + set_begin_index). */
    public int beginIndexForDenoisingStart(double denoisingStart) {
        return (int) (long) Native.call(() -> h().begin_index_for_denoising_start(denoisingStart));
    }

    @Override
    public void close() {
        NativeScheduler x = handle;
        handle = null;
        if (x != null) {
            x.close();
        }
    }
}
