package io.sdxl4j.ops;

import static io.sdxl4j.ops.Ours.run;

import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** timestep_embedding against diffusers' get_timestep_embedding built from torch ops (TorchOracle). */
class TimestepEmbeddingParityTest {

    /**
     * Against the exact (float64) formula. diffusers' float32 evaluation of arg = scale * t * exp(-ln(max_period)
     * * i / (half - shift)) rounds the frequency and the product (a couple of ulps of arg together, torch's
     * float32 transcript as much as ours); sin/cos pass an argument error through unchanged, so the output is
     * off by ~ulp(max |scale * t|) in absolute terms (6e-5 at t = 1000), plus the final rounding. So: 4 ulp of
     * the largest argument, plus 2 ulp of an O(1) sin/cos result.
     */
    private static Tol tolFor(HostArray t, double scale) {
        double maxArg = 0;
        for (float v : t.data()) {
            maxArg = Math.max(maxArg, Math.abs(scale * v));
        }
        return Tol.elementwise(0, 4 * Math.ulp((float) Math.max(maxArg, 1.0)) + 2.4e-7,
                "1 ulp of exp -> ulps of the sin/cos argument scale*t*freq; |t| up to " + (float) maxArg);
    }

    private static void embeddingCase(String label, HostArray t, int dim, boolean flip, float shift, float scale,
                                      float maxPeriod) {
        HostArray got;
        try (Tensor tt = t.toTensor()) {
            got = run(() -> Ops.timestepEmbedding(tt, dim, flip, shift, scale, maxPeriod));
        }
        Parity.assertCloseToExact(label, got,
                p -> TorchOracle.timestepEmbedding(p, t, dim, flip, shift, scale, maxPeriod), tolFor(t, scale));
    }

    @Test
    void sdxlTimeProj() {
        SplittableRandom r = Seeds.rng("timestepSdxl");
        // unet.time_proj = Timesteps(320, flip_sin_to_cos=True, downscale_freq_shift=0): CFG batch of the same
        // t, integer and fractional (Karras/Euler sigmas give fractional timesteps), and the ends 0 and 999
        float[] ts = {999f, 999f, 0f, 0f, 1f, 500f, (float) r.nextDouble(0, 1000), (float) r.nextDouble(0, 1000),
            (float) r.nextInt(1000), 0.5f};
        embeddingCase("timestep_embedding 320 flip t in [0,1000)", new HostArray(ts, new long[] {ts.length}), 320, true,
                0f, 1f, 10000f);
        // int64 timesteps, as the pipeline passes them for integer schedules: same result as the float values
        long[] li = {999, 981, 0, 1, 500};
        float[] lf = {999f, 981f, 0f, 1f, 500f};
        HostArray tf = new HostArray(lf, new long[] {5});
        HostArray got;
        try (Tensor tt = Tensor.ofLongs(li, 5)) {
            got = run(() -> Ops.timestepEmbedding(tt, 320, true, 0f, 1f, 10000f));
        }
        Parity.assertCloseToExact("timestep_embedding 320 flip int64 t", got,
                p -> TorchOracle.timestepEmbedding(p, tf, 320, true, 0f, 1f, 10000f), tolFor(tf, 1));
    }

    @Test
    void sdxlAddTimeIds() {
        SplittableRandom r = Seeds.rng("timestepAddTimeIds");
        // unet.add_time_proj = Timesteps(256, True, 0) on the flattened add_time_ids, CFG batch 2: base
        // (orig h, w, crop top, left, target h, w) and refiner (orig h, w, crop, aesthetic score)
        float[] ids = {1024f, 1024f, 0f, 0f, 1024f, 1024f, 1024f, 1024f, 0f, 0f, 1024f, 1024f,
            768f, 1344f, (float) r.nextInt(64), (float) r.nextInt(64), 6f, 2.5f,
            (float) r.nextInt(4096), (float) r.nextInt(4096)};
        embeddingCase("timestep_embedding 256 flip add_time_ids", new HostArray(ids, new long[] {ids.length}), 256,
                true, 0f, 1f, 10000f);
    }

    @Test
    void otherParameters() {
        SplittableRandom r = Seeds.rng("timestepOther");
        HostArray t = HostArray.uniform(r, -50, 1000, 7);
        // SD 1.x style (flip false, shift 1), an odd dim (zero column appended), a scale and a period
        embeddingCase("timestep_embedding 64 no flip shift 1", t, 64, false, 1f, 1f, 10000f);
        embeddingCase("timestep_embedding 33 (odd) flip", t, 33, true, 0f, 1f, 10000f);
        embeddingCase("timestep_embedding 17 (odd) shift 0.5 scale 2.5 period 5000", t, 17, false, 0.5f, 2.5f, 5000f);
        embeddingCase("timestep_embedding 2 (half 1)", t, 2, true, 0f, 1f, 10000f);
        embeddingCase("timestep_embedding 1 (only the zero column)", t, 1, true, 0f, 1f, 10000f);
    }
}
