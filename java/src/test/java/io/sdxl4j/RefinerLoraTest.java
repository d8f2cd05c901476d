package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.io.SafetensorsWriter;
import io.sdxl4j.models.ClipTextModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoRA on the refiner ({@link Refiner#loadLora}). No refiner LoRA reference data exists, so the test writes a kohya
 * LoRA for tiny-sdxl-refiner itself: UNet modules in the SGM numbering of the refiner's four levels (including
 * level 3, which the base does not have, a LoCon conv, a downsampler, an upsampler and a 1x1 shortcut), one in the
 * diffusers-path style, and text_encoder_2 modules. Each SGM name's diffusers module is derived here by hand from
 * SGM's block numbering (not from the native key map). The fused weights are checked against W + s * (alpha / r) *
 * up @ down computed in double here; generation changes; unloading restores weights and output bit for bit.
 */
class RefinerLoraTest {
    /**
     * Per element: |fused - ref| <= 1e-6 * (|W| + |s * alpha / r| * sum_k |up_ok * down_kj|), the rounding of an fp32
     * sum of r products added to W (a few ulps of the operands; float epsilon is 6e-8).
     */
    private static final double REL_TOL = 1e-6;

    private static Path refinerFolder;
    private static Path baseFolder;
    private static Refiner refiner;

    /** A module of the test LoRA: its kohya name, component, diffusers weight key, rank and alpha (NaN: none). */
    record Module(String kohya, String component, String key, int rank, double alpha) {}

    private static final List<Module> UNET_AND_TE2 = List.of(
            // input_blocks.(1 + level * 3 + j): level 1 j 0 -> 4, the first attention of level 1
            new Module("lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k", "unet",
                    "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight", 4, 2.0),
            // level 2 j 1 -> 8; use_linear_projection: proj_in is a Linear
            new Module("lora_unet_input_blocks_8_1_proj_in", "unet", "down_blocks.2.attentions.1.proj_in.weight", 2, 1.0),
            // level 3 (refiner only) j 0 -> 10; resnet conv1 = in_layers.2 (LoCon, 3x3)
            new Module("lora_unet_input_blocks_10_0_in_layers_2", "unet", "down_blocks.3.resnets.0.conv1.weight", 3, 1.5),
            // level 2's downsampler: input_blocks.(1 + 2 * 3 + 2) = 9, op
            new Module("lora_unet_input_blocks_9_0_op", "unet", "down_blocks.2.downsamplers.0.conv.weight", 2, Double.NaN),
            new Module("lora_unet_middle_block_1_transformer_blocks_0_ff_net_0_proj", "unet",
                    "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight", 4, 4.0),
            // output_blocks.(up level * 3 + j): up level 1 j 0 -> 3; time_emb_proj = emb_layers.1
            new Module("lora_unet_output_blocks_3_0_emb_layers_1", "unet", "up_blocks.1.resnets.0.time_emb_proj.weight", 2, 0.5),
            // up level 1 has attentions, so its upsampler is output_blocks.5.2.conv
            new Module("lora_unet_output_blocks_5_2_conv", "unet", "up_blocks.1.upsamplers.0.conv.weight", 2, 2.0),
            // up level 3 (refiner only) j 2 -> 11; conv_shortcut = skip_connection (1x1, 4-D down and up)
            new Module("lora_unet_output_blocks_11_0_skip_connection", "unet", "up_blocks.3.resnets.2.conv_shortcut.weight", 2, 1.0),
            new Module("lora_unet_label_emb_0_0", "unet", "add_embedding.linear_1.weight", 3, 3.0),
            // kohya's diffusers-path style
            new Module("lora_unet_down_blocks_1_attentions_1_transformer_blocks_0_attn1_to_out_0", "unet",
                    "down_blocks.1.attentions.1.transformer_blocks.0.attn1.to_out.0.weight", 2, 1.0),
            new Module("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", "text_encoder_2",
                    "text_model.encoder.layers.0.self_attn.q_proj.weight", 4, 2.0),
            new Module("lora_te2_text_model_encoder_layers_1_mlp_fc2", "text_encoder_2",
                    "text_model.encoder.layers.1.mlp.fc2.weight", 2, Double.NaN));

    private static final Module TE1 = new Module("lora_te1_text_model_encoder_layers_0_self_attn_k_proj",
            "text_encoder", "text_model.encoder.layers.0.self_attn.k_proj.weight", 2, 1.0);

    /** The LoRA tensors written, by kohya name: {down, up} with their shapes. */
    private static final Map<String, Tensor[]> written = new LinkedHashMap<>();

    @BeforeAll
    static void load() {
        refinerFolder = ReferenceData.root().resolve("models/tiny-sdxl-refiner");
        baseFolder = ReferenceData.root().resolve("models/tiny-sdxl-base");
        refiner = Refiner.load(refinerFolder, PipelineOptions.defaults().withWatermark(false));
    }

    @AfterAll
    static void close() {
        if (refiner != null) {
            refiner.close();
        }
        written.values().forEach(ts -> {
            ts[0].close();
            ts[1].close();
        });
    }

    private static float[] weight(SdxlEngine e, String component, String key) {
        if (component.equals("unet")) {
            try (Tensor t = e.unet.get().weight(key)) {
                return t.toFloatArray();
            }
        }
        for (SdxlEngine.Encoder enc : e.encoders) {
            if (enc.projection() == component.equals("text_encoder_2")) {
                ClipTextModel m = enc.model();
                try (Tensor t = m.weight(key)) {
                    return t.toFloatArray();
                }
            }
        }
        throw new IllegalArgumentException(component);
    }

    private static long[] shape(SdxlEngine e, String component, String key) {
        if (component.equals("unet")) {
            try (Tensor t = e.unet.get().weight(key)) {
                return t.shape();
            }
        }
        try (Tensor t = e.encoders.get(e.encoders.size() - 1).model().weight(key)) {
            return t.shape();
        }
    }

    /** Writes a kohya LoRA of `modules` (down/up drawn from a fixed seed; shapes from the refiner's weights). */
    private static Path writeLora(Path dir, String name, List<Module> modules) {
        SdxlEngine e = refiner.engine();
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        List<Tensor> alphas = new ArrayList<>();
        for (Module m : modules) {
            Tensor[] du = written.computeIfAbsent(m.kohya(), k -> {
                long[] w = m.component().equals("text_encoder")
                        ? new long[] {32, 32}  // the base's CLIP-L width; the refiner has no such encoder
                        : shape(e, m.component(), m.key());
                Random rnd = new Random(k.hashCode());
                long in = w.length == 4 ? w[1] * w[2] * w[3] : w[1];
                long[] downShape = w.length == 4 ? new long[] {m.rank(), w[1], w[2], w[3]} : new long[] {m.rank(), w[1]};
                long[] upShape = w.length == 4 ? new long[] {w[0], m.rank(), 1, 1} : new long[] {w[0], m.rank()};
                return new Tensor[] {Tensor.of(gaussian(rnd, m.rank() * in, 0.2), downShape),
                    Tensor.of(gaussian(rnd, w[0] * m.rank(), 0.2), upShape)};
            });
            tensors.put(m.kohya() + ".lora_down.weight", du[0]);
            tensors.put(m.kohya() + ".lora_up.weight", du[1]);
            if (!Double.isNaN(m.alpha())) {
                Tensor a = Tensor.of(new float[] {(float) m.alpha()});
                alphas.add(a);
                tensors.put(m.kohya() + ".alpha", a);
            }
        }
        Path p = dir.resolve(name + ".safetensors");
        SafetensorsWriter.write(p, tensors, Map.of("ss_network_module", "networks.lora"));
        alphas.forEach(Tensor::close);
        return p;
    }

    private static float[] gaussian(Random rnd, long n, double std) {
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (rnd.nextGaussian() * std);
        }
        return v;
    }

    private static Map<String, float[]> snapshot(SdxlEngine e, List<Module> modules) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Module m : modules) {
            out.put(m.kohya(), weight(e, m.component(), m.key()));
        }
        out.put("conv_in", weight(e, "unet", "conv_in.weight"));  // touched by no module
        return out;
    }

    private static void assertBitIdentical(Map<String, float[]> a, Map<String, float[]> b, String what) {
        assertEquals(a.keySet(), b.keySet());
        for (String k : a.keySet()) {
            float[] x = a.get(k), y = b.get(k);
            assertEquals(x.length, y.length, k);
            for (int i = 0; i < x.length; i++) {
                if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                    throw new AssertionError(what + ": " + k + "[" + i + "] " + x[i] + " vs " + y[i]);
                }
            }
        }
    }

    /** Checks every module's fused weight against W + s * (alpha / r) * up @ down in double. */
    private static void assertFused(Map<String, float[]> before, Map<String, float[]> after, List<Module> modules,
                                    double scale) {
        double worstAll = 0;
        for (Module m : modules) {
            Tensor[] du = written.get(m.kohya());
            float[] down = du[0].toFloatArray();
            float[] up = du[1].toFloatArray();
            float[] w0 = before.get(m.kohya());
            float[] w = after.get(m.kohya());
            int r = m.rank();
            int out = (int) du[1].shape()[0];
            int k = down.length / r;
            assertEquals(out * k, w.length, m.key());
            double s = scale * (Double.isNaN(m.alpha()) ? r : m.alpha()) / r;
            double worst = 0;
            for (int o = 0; o < out; o++) {
                for (int j = 0; j < k; j++) {
                    double delta = 0;
                    double size = 0;
                    for (int q = 0; q < r; q++) {
                        delta += (double) up[o * r + q] * down[q * k + j];
                        size += Math.abs((double) up[o * r + q] * down[q * k + j]);
                    }
                    double ref = w0[o * k + j] + s * delta;
                    double err = Math.abs(w[o * k + j] - ref);
                    double bound = REL_TOL * (Math.abs(w0[o * k + j]) + Math.abs(s) * size) + Double.MIN_NORMAL;
                    worst = Math.max(worst, err / bound);
                    if (err > bound) {
                        throw new AssertionError(m.kohya() + " -> " + m.key() + "[" + o + ", " + j + "]: fused "
                                + w[o * k + j] + ", expected " + ref + " (error " + err + " > " + bound + ")");
                    }
                }
            }
            // a LoRA that changed nothing would pass the bound only if the delta were zero: it is not
            assertTrue(maxAbsDiff(w0, w) > 1e-4, m.key() + " did not change");
            worstAll = Math.max(worstAll, worst);
        }
        System.out.printf("%d fused weights at scale %s: worst error %.3f of the bound%n", modules.size(), scale, worstAll);
        assertArrayEquals(before.get("conv_in"), after.get("conv_in"), 0f, "an untouched weight changed");
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        return ReferenceData.maxAbsDiff(a, b);
    }

    private static GenerationRequest request() {
        float[] px = new float[3 * 64 * 64];
        Random rnd = new Random(7);
        for (int i = 0; i < px.length; i++) {
            px[i] = rnd.nextFloat();
        }
        return GenerationRequest.builder().prompt("a red fox in the snow").steps(4).strength(0.75).seed(11L)
                .image(ImageInput.pixels(px, 1, 64, 64)).build();
    }

    @Test
    void fusesUnloadsAndChangesTheImage(@TempDir Path dir) {
        SdxlEngine e = refiner.engine();
        Path lora = writeLora(dir, "refiner-style", UNET_AND_TE2);
        Map<String, float[]> before = snapshot(e, UNET_AND_TE2);
        float[] plain = refiner.generate(request()).pixels();
        try {
            String name = refiner.loadLora(lora, 0.8);
            assertEquals("refiner-style", name);
            assertEquals(Map.of(name, 0.8), refiner.loras());
            assertFused(before, snapshot(e, UNET_AND_TE2), UNET_AND_TE2, 0.8);
            float[] withLora = refiner.generate(request()).pixels();
            double d = maxAbsDiff(plain, withLora);
            System.out.printf("refiner image with the LoRA differs by %.3g%n", d);
            assertTrue(d > 1e-3, "the LoRA did not change the image: " + d);

            refiner.setLoraScale(name, -0.5);
            assertFused(before, snapshot(e, UNET_AND_TE2), UNET_AND_TE2, -0.5);
        } finally {
            refiner.unloadLoras();
        }
        assertBitIdentical(before, snapshot(e, UNET_AND_TE2), "after unloading");
        assertArrayEquals(plain, refiner.generate(request()).pixels(), 0f, "image after unloading");
    }

    @Test
    void offloadedRefinerGetsTheLoraWhenItsModelsLoadAgain(@TempDir Path dir) {
        Path lora = writeLora(dir, "refiner-style", UNET_AND_TE2);
        try {
            refiner.loadLora(lora, 1.0);
            float[] resident = refiner.generate(request()).pixels();
            try (Refiner offloaded = Refiner.load(refinerFolder,
                    PipelineOptions.defaults().withWatermark(false).withCpuOffload(true))) {
                offloaded.loadLora(lora, 1.0);
                assertArrayEquals(resident, offloaded.generate(request()).pixels(), 0f, "offloaded vs resident");
            }
        } finally {
            refiner.unloadLoras();
        }
    }

    @Test
    void textEncoderOneModulesAreRefusedUnlessLenient(@TempDir Path dir) {
        SdxlEngine e = refiner.engine();
        List<Module> withTe1 = new ArrayList<>(UNET_AND_TE2);
        withTe1.add(TE1);
        Path bad = writeLora(dir, "with-te1", withTe1);
        Map<String, float[]> before = snapshot(e, UNET_AND_TE2);
        SdxlException ex = assertThrows(SdxlException.class, () -> refiner.loadLora(bad, 1.0));
        assertEquals(ErrorCode.BAD_MODEL_FILE, ex.code());
        assertTrue(ex.getMessage().contains(TE1.kohya()) && ex.getMessage().contains("no text_encoder")
                && ex.getMessage().contains("leniently"), ex.getMessage());
        assertTrue(refiner.loras().isEmpty());
        assertBitIdentical(before, snapshot(e, UNET_AND_TE2), "after a refused LoRA");
        try {
            refiner.loadLora(bad, 1.0, true);
            Map<String, float[]> lenient = snapshot(e, UNET_AND_TE2);
            refiner.unloadLoras();
            refiner.loadLora(writeLora(dir, "without-te1", UNET_AND_TE2), 1.0);
            assertBitIdentical(snapshot(e, UNET_AND_TE2), lenient, "lenient with te1 vs the same LoRA without");
        } finally {
            refiner.unloadLoras();
        }
    }

    @Test
    void aRefinerSharingTheBasesTextEncoderLeavesItToTheBase(@TempDir Path dir) {
        List<Module> unetOnly = UNET_AND_TE2.stream().filter(m -> m.component().equals("unet")).toList();
        List<Module> te2Only = UNET_AND_TE2.stream().filter(m -> !m.component().equals("unet")).toList();
        Path full = writeLora(dir, "refiner-style", UNET_AND_TE2);
        Path unet = writeLora(dir, "refiner-unet", unetOnly);
        Path te2 = writeLora(dir, "te2", te2Only);  // fits the base's text_encoder_2 too: the tiny models share it
        PipelineOptions opts = PipelineOptions.defaults().withWatermark(false);
        try (StableDiffusionXL base = StableDiffusionXL.load(baseFolder, opts);
             Refiner shared = base.loadRefiner(refinerFolder, opts)) {
            SdxlEngine b = base.engine();
            SdxlEngine r = shared.engine();
            Map<String, float[]> baseTe2 = snapshot(b, te2Only);
            base.loadLora(te2, 1.0);
            Map<String, float[]> baseFused = snapshot(b, te2Only);
            assertFused(baseTe2, baseFused, te2Only, 1.0);

            SdxlException ex = assertThrows(SdxlException.class, () -> shared.loadLora(full, 1.0));
            assertEquals(ErrorCode.BAD_MODEL_FILE, ex.code());
            assertTrue(ex.getMessage().contains("text_encoder_2") && ex.getMessage().contains("loadRefiner")
                    && ex.getMessage().contains(te2Only.get(0).kohya()), ex.getMessage());

            Map<String, float[]> refinerUnet = snapshot(r, unetOnly);
            shared.loadLora(unet, 1.0);
            assertFused(refinerUnet, snapshot(r, unetOnly), unetOnly, 1.0);
            assertBitIdentical(baseFused, snapshot(b, te2Only), "the base's text_encoder_2 LoRA after the refiner's");
            shared.unloadLoras();
            assertBitIdentical(baseFused, snapshot(b, te2Only), "the base's LoRA after the refiner unloaded its own");
            shared.loadLora(full, 1.0, true);  // lenient: the UNet part only
            assertFused(refinerUnet, snapshot(r, unetOnly), unetOnly, 1.0);
            assertBitIdentical(baseFused, snapshot(b, te2Only), "lenient refiner LoRA vs the base's encoder");
            shared.unloadLoras();
            assertBitIdentical(refinerUnet, snapshot(r, unetOnly), "refiner UNet after unloading");
        }
    }

    @Test
    void cliFusesRefinerLoras(@TempDir Path dir) throws Exception {
        List<Module> unetOnly = UNET_AND_TE2.stream().filter(m -> m.component().equals("unet")).toList();
        Path lora = writeLora(dir, "refiner-unet", unetOnly);
        List<String> common = List.of("--model", baseFolder.toString(), "--refiner", refinerFolder.toString(), "-p",
                "a fox", "--steps", "5", "-W", "64", "-H", "64", "--seed", "3", "--no-watermark");
        Path plain = dir.resolve("plain.png");
        Path fused = dir.resolve("lora.png");
        assertEquals(0, cli(common, "-o", plain.toString()));
        assertEquals(0, cli(common, "--refiner-lora", lora + ":0.9", "-o", fused.toString()));
        String png = new String(java.nio.file.Files.readAllBytes(fused), java.nio.charset.StandardCharsets.ISO_8859_1);
        try (io.sdxl4j.models.LoraFile f = io.sdxl4j.models.LoraFile.open(lora, false)) {
            String hashes = "Lora hashes: \"refiner-unet: " + f.a1111Hash() + "\"";
            assertTrue(png.contains(hashes), "infotext has " + hashes);
        }
        java.awt.image.BufferedImage a = javax.imageio.ImageIO.read(plain.toFile());
        java.awt.image.BufferedImage b = javax.imageio.ImageIO.read(fused.toFile());
        int[] pa = a.getRGB(0, 0, 64, 64, null, 0, 64);
        int[] pb = b.getRGB(0, 0, 64, 64, null, 0, 64);
        assertTrue(!java.util.Arrays.equals(pa, pb), "the refiner LoRA did not change the CLI's image");
        // --refiner-lora without a refiner is refused rather than ignored
        java.io.StringWriter err = new java.io.StringWriter();
        picocli.CommandLine cmd = new picocli.CommandLine(new io.sdxl4j.cli.Generate());
        cmd.setErr(new java.io.PrintWriter(err));
        assertTrue(cmd.execute("--model", baseFolder.toString(), "--refiner-lora", lora.toString(), "-o",
                dir.resolve("x.png").toString()) != 0);
        assertTrue(err.toString().contains("--refiner-lora is for the --refiner model"), err.toString());
    }

    private static int cli(List<String> common, String... more) {
        List<String> args = new ArrayList<>(common);
        args.addAll(List.of(more));
        return new picocli.CommandLine(new io.sdxl4j.cli.Generate()).execute(args.toArray(String[]::new));
    }
}
