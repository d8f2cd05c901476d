package io.sdxl4j.schedulers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ReferenceData;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.Tensor;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * scheduler.add_noise (what img2img with strength uses) for every compatible scheduler class, against the
 * formulas diffusers uses, computed here independently from SDXL's scaled_linear betas in double precision:
 * <ul>
 *   <li>DDIM, DDPM, PNDM, DEIS: sqrt(acp[t]) x + sqrt(1 - acp[t]) noise at the step's integer timestep t;</li>
 *   <li>DPM-Solver (multistep, singlestep), UniPC: alpha x + sigma_t noise with alpha = 1 / sqrt(1 + sigma^2),
 *       sigma_t = sigma alpha, sigma the step's sigma (diffusers' _sigma_to_alpha_sigma_t);</li>
 *   <li>Euler, Euler ancestral, Heun, LMS, KDPM2, KDPM2 ancestral, DPM-SDE: x + sigma noise.</li>
 * </ul>
 * Where a step's timestep is an integer, its sigma must also be the training sigma sqrt((1 - acp[t]) / acp[t]).
 * Tolerance 2e-6 relative to the values' scale (float32 arithmetic against double).
 */
class SchedulerAddNoiseTest {
    private static final double RTOL = 2e-6;

    private static double[] alphasCumprod() {
        // scaled_linear: linspace(sqrt(0.00085), sqrt(0.012), 1000) ** 2
        double a = Math.sqrt(0.00085), b = Math.sqrt(0.012);
        double[] acp = new double[1000];
        double prod = 1.0;
        for (int i = 0; i < 1000; i++) {
            double beta = a + (b - a) * i / 999.0;
            prod *= 1.0 - beta * beta;
            acp[i] = prod;
        }
        return acp;
    }

    @TestFactory
    Stream<DynamicTest> everyClass() {
        Path config = ReferenceData.root().resolve("configs/sdxl-base-1.0/scheduler/scheduler_config.json");
        return SchedulerKind.compatibles().stream().map(cls -> DynamicTest.dynamicTest(cls, () -> check(cls, config)));
    }

    private static void check(String cls, Path config) {
        double[] acp = alphasCumprod();
        Map<String, Object> overrides = cls.equals("DPMSolverSDEScheduler") ? Map.of("noise_sampler_seed", 7) : Map.of();
        try (Scheduler s = Scheduler.create(SchedulerConfig.fromConfig(cls, config, overrides))) {
            s.setTimesteps(10);
            double[] ts = s.timesteps();
            double[] sig = s.sigmas();
            Random rnd = new Random(cls.hashCode());
            int n = 4 * 8 * 8;
            float[] x = new float[n];
            float[] z = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = (float) rnd.nextGaussian();
                z[i] = (float) rnd.nextGaussian();
            }
            for (int i : new int[] {0, ts.length / 2, ts.length - 1}) {
                double t = ts[i];
                boolean integer = t == Math.rint(t);
                double a, c;  // expected = a x + c z
                switch (cls) {
                    case "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "DEISMultistepScheduler" -> {
                        assertTrue(integer, cls + ": integer timesteps expected");
                        a = Math.sqrt(acp[(int) t]);
                        c = Math.sqrt(1 - acp[(int) t]);
                    }
                    case "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "UniPCMultistepScheduler" -> {
                        checkTrainingSigma(cls, i, t, sig[i], acp);
                        a = 1.0 / Math.sqrt(1.0 + sig[i] * sig[i]);
                        c = sig[i] * a;
                    }
                    default -> {
                        if (integer) {
                            checkTrainingSigma(cls, i, t, sig[i], acp);
                        }
                        a = 1.0;
                        c = sig[i];
                    }
                }
                float[] got;
                try (Tensor xt = Tensor.of(x, 1, 4, 8, 8); Tensor zt = Tensor.of(z, 1, 4, 8, 8);
                     Tensor out = s.addNoise(xt, zt, i)) {
                    got = out.toFloatArray();
                }
                double worst = 0;
                for (int k = 0; k < n; k++) {
                    double want = a * x[k] + c * z[k];
                    worst = Math.max(worst, Math.abs(got[k] - want) / Math.max(1.0, Math.abs(a) + Math.abs(c)));
                }
                assertTrue(worst <= RTOL, cls + " step " + i + " (t=" + t + "): add_noise off by " + worst);
            }
        }
    }

    private static void checkTrainingSigma(String cls, int i, double t, double sigma, double[] acp) {
        if (t != Math.rint(t)) {
            return;
        }
        double want = Math.sqrt((1 - acp[(int) t]) / acp[(int) t]);
        assertEquals(want, sigma, 2e-6 * want, cls + " step " + i + ": sigma of t=" + t);
    }
}
