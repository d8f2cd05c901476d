package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.io.SafetensorsWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LyCORIS LoHa and LoKr files (kohya names, written here for tiny-sdxl-base with seeded factors): the fused weights
 * against an independent implementation of the deltas with plain loops in double precision, within 1e-5 (the lora
 * group's tolerance for fused weights; the factors are O(0.5), the deltas O(1)), for LoHa (plain, and Tucker on a
 * 3x3 conv) and LoKr (w1 full or split, w2 full, split, or Tucker on a 3x3 conv; both factors full) on UNet linears
 * and convs and both text encoders; the scale rules (LoHa alpha / rank with the rank from hada_w1_b, no alpha: 1;
 * LoKr alpha / rank only when a factor is split). Unfused they give the same latents as fused (within 4e-5; measured
 * 8e-6).
 * LyCORIS kinds that are not supported are refused naming the kind, unless lenient.
 *
 * <p>No LyCORIS reference data exists in the project: the formulas are those of LyCORIS (lycoris/modules/loha.py,
 * lokr.py) and AUTOMATIC1111 (extensions-builtin/Lora/network_hada.py, network_lokr.py).
 */
class LycorisLoraTest {
    private static final double WEIGHT_ATOL = 1e-5;
    private static StableDiffusionXL shared;

    private static StableDiffusionXL pipeline() {
        if (shared == null) {
            shared = StableDiffusionXL.load(ReferenceData.root().resolve("models/tiny-sdxl-base"),
                    PipelineOptions.defaults().withWatermark(false));
        }
        return shared;
    }

    @AfterAll
    static void close() {
        if (shared != null) {
            shared.close();
            shared = null;
        }
    }

    // ------------------------------------------------------------------------- a module: factors and its ΔW

    /** A matrix of doubles [rows][cols] and the float tensor written for it. */
    private record Factor(double[] v, long[] shape) {
        double at(int... idx) {
            int flat = 0;
            for (int d = 0; d < idx.length; d++) {
                flat = flat * (int) shape[d] + idx[d];
            }
            return v[flat];
        }

        int dim(int d) {
            return (int) shape[d];
        }
    }

    /** One LyCORIS module of a file: its kohya name, its tensors, the weight it targets and its expected ΔW. */
    private static final class Module {
        final String component, weightKey, kohya;
        final Map<String, Factor> parts = new LinkedHashMap<>();
        Double alpha;
        double[] delta;      // ΔW in the weight's memory order, unscaled
        double factor;       // the scale rule's alpha / rank

        Module(String component, String weightKey) {
            this.component = component;
            this.weightKey = weightKey;
            String prefix = component.equals("unet") ? "lora_unet_" : component.equals("text_encoder") ? "lora_te1_" : "lora_te2_";
            this.kohya = prefix + weightKey.substring(0, weightKey.length() - ".weight".length()).replace('.', '_');
        }

        Factor add(String part, Random rnd, long... shape) {
            int n = 1;
            for (long s : shape) {
                n *= (int) s;
            }
            double[] v = new double[n];
            for (int i = 0; i < n; i++) {
                v[i] = (float) (rnd.nextDouble() - 0.5);  // the float value the file stores
            }
            Factor f = new Factor(v, shape);
            parts.put(part, f);
            return f;
        }

        void write(Map<String, Tensor> out) {
            parts.forEach((part, f) -> {
                float[] data = new float[f.v.length];
                for (int i = 0; i < data.length; i++) {
                    data[i] = (float) f.v[i];
                }
                out.put(kohya + "." + part, Tensor.of(data, f.shape));
            });
            if (alpha != null) {
                out.put(kohya + ".alpha", Tensor.of(new float[] {alpha.floatValue()}));
            }
        }
    }

    /** a [M, K] @ b [K, N] (b read as [K, N] whatever its dims). */
    private static double[] mm(Factor a, Factor b) {
        int m = a.dim(0), k = a.dim(1), n = b.v.length / b.dim(0);
        double[] out = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int r = 0; r < k; r++) {
                    s += a.v[i * k + r] * b.v[r * n + j];
                }
                out[i * n + j] = s;
            }
        }
        return out;
    }

    /** Tucker: out[o][i][s] = sum_p sum_q t[p][q][s] wa[p][o] wb[q][i]. */
    private static double[] tucker(Factor t, Factor wa, Factor wb) {
        int p = t.dim(0), q = t.dim(1), s = t.dim(2) * t.dim(3), o = wa.dim(1), in = wb.dim(1);
        double[] out = new double[o * in * s];
        for (int a = 0; a < o; a++) {
            for (int b = 0; b < in; b++) {
                for (int c = 0; c < s; c++) {
                    double sum = 0;
                    for (int x = 0; x < p; x++) {
                        for (int y = 0; y < q; y++) {
                            sum += t.v[(x * q + y) * s + c] * wa.v[x * o + a] * wb.v[y * in + b];
                        }
                    }
                    out[(a * in + b) * s + c] = sum;
                }
            }
        }
        return out;
    }

    /** kron(w1 [a, c], w2 [b, D]) -> [a * b, c * D]. */
    private static double[] kron(double[] w1, int a, int c, double[] w2, int b, int d) {
        double[] out = new double[a * b * c * d];
        for (int i = 0; i < a; i++) {
            for (int p = 0; p < b; p++) {
                for (int j = 0; j < c; j++) {
                    for (int q = 0; q < d; q++) {
                        out[(i * b + p) * (c * d) + j * d + q] = w1[i * c + j] * w2[p * d + q];
                    }
                }
            }
        }
        return out;
    }

    private static double[] hadamard(double[] x, double[] y) {
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] * y[i];
        }
        return out;
    }

    private static Module loha(String component, String key, int out, int k, int rank, Double alpha, Random rnd) {
        Module m = new Module(component, key);
        Factor w1a = m.add("hada_w1_a", rnd, out, rank), w1b = m.add("hada_w1_b", rnd, rank, k);
        Factor w2a = m.add("hada_w2_a", rnd, out, rank), w2b = m.add("hada_w2_b", rnd, rank, k);
        m.alpha = alpha;
        m.delta = hadamard(mm(w1a, w1b), mm(w2a, w2b));
        m.factor = alpha == null ? 1.0 : alpha / rank;
        return m;
    }

    private static List<Module> lohaFile(Random rnd) {
        String attn = "down_blocks.1.attentions.0.transformer_blocks.0.";
        List<Module> out = new ArrayList<>();
        out.add(loha("unet", attn + "attn1.to_q.weight", 32, 32, 4, 2.0, rnd));                  // scale 0.5
        out.add(loha("unet", "down_blocks.0.resnets.0.conv2.weight", 16, 16 * 9, 2, 1.0, rnd));   // a conv, flattened
        out.add(loha("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj.weight", 32, 32, 2, 4.0, rnd));
        // Tucker on a 3x3 conv [16, 16, 3, 3], w1 and w2 of different ranks (3 and 2); no alpha: scale 1.
        Module t = new Module("unet", "down_blocks.0.resnets.0.conv1.weight");
        Factor t1 = t.add("hada_t1", rnd, 3, 3, 3, 3), w1a = t.add("hada_w1_a", rnd, 3, 16), w1b = t.add("hada_w1_b", rnd, 3, 16);
        Factor t2 = t.add("hada_t2", rnd, 2, 2, 3, 3), w2a = t.add("hada_w2_a", rnd, 2, 16), w2b = t.add("hada_w2_b", rnd, 2, 16);
        t.delta = hadamard(tucker(t1, w1a, w1b), tucker(t2, w2a, w2b));
        t.factor = 1.0;
        out.add(t);
        return out;
    }

    private static List<Module> lokrFile(Random rnd) {
        List<Module> out = new ArrayList<>();
        // [32, 80] = kron(w1 [4, 8], w2_a [8, 2] @ w2_b [2, 10]); alpha 3 / rank 2.
        Module a = new Module("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight");
        Factor w1 = a.add("lokr_w1", rnd, 4, 8), w2a = a.add("lokr_w2_a", rnd, 8, 2), w2b = a.add("lokr_w2_b", rnd, 2, 10);
        a.alpha = 3.0;
        a.delta = kron(w1.v, 4, 8, mm(w2a, w2b), 8, 10);
        a.factor = 1.5;
        out.add(a);
        // A conv [32, 16, 3, 3] = kron(w1_a [4, 2] @ w1_b [2, 2], w2_a [8, 2] @ w2_b [2, 8 * 9]) in memory order; alpha 1.
        Module b = new Module("unet", "down_blocks.1.resnets.0.conv1.weight");
        Factor b1a = b.add("lokr_w1_a", rnd, 4, 2), b1b = b.add("lokr_w1_b", rnd, 2, 2);
        Factor b2a = b.add("lokr_w2_a", rnd, 8, 2), b2b = b.add("lokr_w2_b", rnd, 2, 72);
        b.alpha = 1.0;
        b.delta = kron(mm(b1a, b1b), 4, 2, mm(b2a, b2b), 8, 72);
        b.factor = 0.5;
        out.add(b);
        // Tucker w2 on a conv [16, 16, 3, 3] = kron(w1 [2, 4], Tucker(t2 [2, 2, 3, 3], w2_a [2, 8], w2_b [2, 4]));
        // no alpha: scale 1.
        Module c = new Module("unet", "down_blocks.0.resnets.1.conv2.weight");
        Factor c1 = c.add("lokr_w1", rnd, 2, 4), t2 = c.add("lokr_t2", rnd, 2, 2, 3, 3);
        Factor c2a = c.add("lokr_w2_a", rnd, 2, 8), c2b = c.add("lokr_w2_b", rnd, 2, 4);
        c.delta = kron(c1.v, 2, 4, tucker(t2, c2a, c2b), 8, 4 * 9);
        c.factor = 1.0;
        out.add(c);
        // Both factors full: scale 1 whatever the alpha.
        Module d = new Module("text_encoder_2", "text_model.encoder.layers.0.mlp.fc1.weight");  // [96, 48]
        Factor d1 = d.add("lokr_w1", rnd, 8, 4), d2 = d.add("lokr_w2", rnd, 12, 12);
        d.alpha = 5.0;
        d.delta = kron(d1.v, 8, 4, d2.v, 12, 12);
        d.factor = 1.0;
        out.add(d);
        return out;
    }

    private static Path write(Path dir, String name, List<Module> modules) {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        modules.forEach(m -> m.write(tensors));
        Path p = dir.resolve(name);
        SafetensorsWriter.write(p, tensors, Map.of());
        tensors.values().forEach(Tensor::close);
        return p;
    }

    private static void checkFused(StableDiffusionXL pipe, Path file, List<Module> modules, double scale) {
        Map<String, float[]> before = new LinkedHashMap<>();
        for (Module m : modules) {
            before.put(m.component + ":" + m.weightKey, LoraReferenceTest.weight(pipe, m.component, m.weightKey));
        }
        try {
            pipe.loadLora(file, scale);
            for (Module m : modules) {
                float[] w0 = before.get(m.component + ":" + m.weightKey);
                float[] ours = LoraReferenceTest.weight(pipe, m.component, m.weightKey);
                assertEquals(w0.length, m.delta.length, m.weightKey + ": the test's delta has the weight's size");
                double worst = 0, change = 0;
                for (int i = 0; i < ours.length; i++) {
                    double expected = w0[i] + scale * m.factor * m.delta[i];
                    worst = Math.max(worst, Math.abs(ours[i] - expected));
                    change = Math.max(change, Math.abs(ours[i] - w0[i]));
                }
                System.out.printf("%s %s:%s: vs independent formula %.3g (change %.3g)%n", file.getFileName(),
                        m.component, m.weightKey, worst, change);
                assertTrue(worst <= WEIGHT_ATOL, m.weightKey + ": fused weight differs from the formula by " + worst);
                assertTrue(change > 100 * WEIGHT_ATOL, m.weightKey + ": the delta must be visible: " + change);
            }
        } finally {
            pipe.unloadLoras();
        }
        for (Module m : modules) {  // unloading restores the originals
            float[] w0 = before.get(m.component + ":" + m.weightKey);
            float[] now = LoraReferenceTest.weight(pipe, m.component, m.weightKey);
            for (int i = 0; i < w0.length; i++) {
                assertEquals(Float.floatToRawIntBits(w0[i]), Float.floatToRawIntBits(now[i]), m.weightKey + "[" + i + "]");
            }
        }
    }

    @Test
    void lohaFusedMatchesTheFormula(@TempDir Path dir) {
        List<Module> modules = lohaFile(new Random(21));
        checkFused(pipeline(), write(dir, "loha.safetensors", modules), modules, 0.7);
    }

    @Test
    void lokrFusedMatchesTheFormula(@TempDir Path dir) {
        List<Module> modules = lokrFile(new Random(22));
        checkFused(pipeline(), write(dir, "lokr.safetensors", modules), modules, 0.7);
    }

    /** The first lora pipeline case's request, latents only. */
    private static float[] latents(StableDiffusionXL pipe) {
        GenerationRequest r = GenerationRequest.builder().prompt("a photo of a cat").negativePrompt("blurry").steps(3)
                .size(64, 64).scheduler(SchedulerKind.EULER).output(GenerationRequest.Output.LATENT).build();
        try (Generator g = Generator.seeded(41)) {
            return pipe.generate(r, g, null, null).latents();
        }
    }

    @Test
    void unfusedAgreesWithFused(@TempDir Path dir) {
        StableDiffusionXL pipe = pipeline();
        Path loha = write(dir, "loha.safetensors", lohaFile(new Random(21)));
        Path lokr = write(dir, "lokr.safetensors", lokrFile(new Random(22)));
        float[] none = latents(pipe);
        try {
            pipe.loadLora(loha, 0.6, LoraMode.FUSED);
            pipe.loadLora(lokr, 0.4, LoraMode.FUSED);
            float[] fused = latents(pipe);
            pipe.unloadLoras();
            pipe.loadLora(loha, 0.6, LoraMode.UNFUSED);
            pipe.loadLora(lokr, 1.0, LoraMode.UNFUSED);
            pipe.setLoraScale("lokr", 0.4);
            float[] unfused = latents(pipe);
            double d = ReferenceData.maxAbsDiff(unfused, fused), effect = ReferenceData.maxAbsDiff(fused, none);
            System.out.printf("LoHa + LoKr unfused vs fused latents: %.3g (they move the latents by %.3g)%n", d, effect);
            assertTrue(effect > 1e-2, "the LyCORIS files must change the latents: " + effect);
            assertTrue(d <= 4e-5, "unfused vs fused: " + d);
        } finally {
            pipe.unloadLoras();
        }
    }

    @Test
    void unsupportedKindsAreNamed(@TempDir Path dir) {
        StableDiffusionXL pipe = pipeline();
        String m = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q";
        Random rnd = new Random(5);
        Module lora = new Module("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight");
        lora.add("lora_down.weight", rnd, 2, 32);
        lora.add("lora_up.weight", rnd, 32, 2);
        for (String[] kind : new String[][] {{"oft_blocks", "OFT/BOFT"}, {"dora_scale", "DoRA"}, {"diff", "LyCORIS full"},
                {"lora_mid.weight", "lora_mid"}}) {
            Map<String, Tensor> t = new LinkedHashMap<>();
            lora.write(t);
            t.put(m + "." + kind[0], Tensor.of(new float[32], 32, 1));
            Path f = dir.resolve(kind[0] + ".safetensors");
            SafetensorsWriter.write(f, t, Map.of());
            t.values().forEach(Tensor::close);
            SdxlException e = assertThrows(SdxlException.class, () -> pipe.loadLora(f, 1.0));
            assertEquals(ErrorCode.BAD_MODEL_FILE, e.code());
            assertTrue(e.getMessage().contains(kind[1]) && e.getMessage().contains(f.toString())
                    && e.getMessage().contains("leniently"), e.getMessage());
            assertTrue(pipe.loras().isEmpty());
            try {  // lenient: the LoRA part loads, the unsupported key is skipped
                pipe.loadLora(f, 1.0, LoraMode.UNFUSED, true);
                assertEquals(1, pipe.loras().size());
            } finally {
                pipe.unloadLoras();
            }
        }
    }
}
