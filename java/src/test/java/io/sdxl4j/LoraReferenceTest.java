package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sdxl4j.io.SafetensorsFile;
import io.sdxl4j.models.ClipTextModel;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every case of cases/lora through the public API (diffusers 0.31 + peft 0.13.2 {@code load_lora_weights}), each in
 * both {@link LoraMode}s:
 *
 * <ul>
 *   <li>pipeline cases (kohya SGM names, kohya diffusers-style names, PEFT; scale 1 and 0.5): {@link
 *       StableDiffusionXL#loadLora} on tiny-sdxl-base, compared as {@link PipelineReferenceTest} does (timesteps
 *       exact, every step's latents and the image within 1e-3, step-0 conditioning within 1e-4: the scale reaches
 *       both text encoders);</li>
 *   <li>{@code fused_*} records: fused, the weights vs diffusers' {@code fuse_lora()} ({@code fused_*}) and the
 *       formula ({@code expected_formula_*}) within 1e-5; unfused, the weights bit for bit unchanged; in both the
 *       fused image;</li>
 *   <li>unfused vs fused generations agree within 4e-5 (measured 1.3e-5; several LoRAs, scales, mixed modes);
 *       unloading unfused LoRAs gives the no-LoRA output bit for bit;</li>
 *   <li>kohya SGM vs diffusers-style names give bit-identical weights; unloading restores every weight bit for bit;
 *       300 mutated LoRA files (fused or unfused) give SdxlException (never a crash) and leave the weights
 *       untouched.</li>
 * </ul>
 */
class LoraReferenceTest {
    private static final double WEIGHT_ATOL = 1e-5;  // the group's tolerance for fused weights
    private static final double IMAGE_ATOL = 1e-3;   // the pipelines group's
    private static StableDiffusionXL shared;

    private static Path root() {
        return ReferenceData.root();
    }

    private static Path loraFile(String name) {
        return root().resolve("cases/lora").resolve(name);
    }

    private static StableDiffusionXL pipeline() {
        if (shared == null) {
            shared = StableDiffusionXL.load(root().resolve("models/tiny-sdxl-base"),
                    PipelineOptions.defaults().withWatermark(false).withDevice(PipelineReferenceTest.device()));
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

    private static JsonNode index() throws Exception {
        return new ObjectMapper().readTree(root().resolve("cases/lora/index.json").toFile());
    }

    @TestFactory
    Stream<DynamicTest> everyCase() {
        List<JsonNode> cases = ReferenceData.cases("lora");
        assertEquals(8, cases.size(), "lora cases");
        return Stream.of(LoraMode.values()).flatMap(mode -> cases.stream().map(c -> DynamicTest.dynamicTest(
                c.get("name").asText() + " [" + mode.cliName() + "]", () -> {
                    StableDiffusionXL pipe = pipeline();
                    try {
                        if (c.get("name").asText().startsWith("fused_")) {
                            fused(c, pipe, mode);
                        } else {
                            generation(c, pipe, mode);
                        }
                    } finally {
                        pipe.unloadLoras();
                    }
                })));
    }

    static void generation(JsonNode c, StableDiffusionXL pipe, LoraMode mode) {
        JsonNode p = c.get("params");
        Path file = ReferenceData.caseFile("lora", c);
        String name = pipe.loadLora(loraFile(p.get("lora_file").asText()), p.get("lora_scale").asDouble(), mode);
        assertEquals(Map.of(name, p.get("lora_scale").asDouble()), pipe.loras());
        assertEquals(mode, pipe.loraMode(name));
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            run(c, p, f, file, pipe);
        }
    }

    private static void run(JsonNode c, JsonNode p, SafetensorsFile f, Path file, StableDiffusionXL pipe) {
        ObjectNode kw = p.get("call_kwargs").deepCopy();
        JsonNode cak = kw.remove("cross_attention_kwargs");
        if (cak != null) {  // diffusers' per-call LoRA scale: here the scale given to loadLora
            assertEquals(p.get("lora_scale").asDouble(), cak.get("scale").asDouble(), "cross_attention_kwargs scale");
        }
        GenerationRequest.Builder b = PipelineReferenceTest.request(kw, f)
                .scheduler(SchedulerKind.fromName(p.get("scheduler_class").asText()));
        PipelineReferenceTest.overrides(p.get("scheduler_overrides"), b);
        PipelineReferenceTest.Recorder rec = new PipelineReferenceTest.Recorder();
        GenerationResult r;
        try (Generator g = Generator.seeded(p.get("seed").asLong())) {
            r = pipe.generate(b.build(), g, rec);
        }
        PipelineReferenceTest.compare(c, f, file, "", r, rec);
    }

    static float[] weight(StableDiffusionXL pipe, String component, String key) {
        SdxlEngine e = pipe.engine();
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

    static void fused(JsonNode c, StableDiffusionXL pipe, LoraMode mode) {
        JsonNode p = c.get("params");
        Path file = ReferenceData.caseFile("lora", c);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            List<String[]> keys = new ArrayList<>();  // (component, key, record name)
            for (String t : f.names()) {
                if (t.startsWith("fused_")) {
                    String full = t.substring("fused_".length());
                    int dot = full.indexOf('.');
                    keys.add(new String[] {full.substring(0, dot), full.substring(dot + 1), full});
                }
            }
            assertEquals(4, keys.size(), "fused tensors");
            Map<String, float[]> before = snapshot(pipe, keys);
            pipe.loadLora(loraFile(p.get("lora_file").asText()), 1.0, mode);
            for (String[] k : keys) {
                float[] ours = weight(pipe, k[0], k[1]);
                if (mode == LoraMode.UNFUSED) {  // run-time adapters: the weights stay the originals
                    assertBitIdentical(Map.of(k[2], before.get(k[0] + ":" + k[1])), Map.of(k[2], ours), "unfused");
                    continue;
                }
                double dFused = ReferenceData.maxAbsDiff(ours, PipelineReferenceTest.floats(f, "fused_" + k[2]));
                double dFormula = ReferenceData.maxAbsDiff(ours, PipelineReferenceTest.floats(f, "expected_formula_" + k[2]));
                System.out.printf("%s %s: vs fuse_lora %.3g, vs formula %.3g%n", c.get("name").asText(), k[2], dFused, dFormula);
                assertTrue(dFused <= WEIGHT_ATOL && dFormula <= WEIGHT_ATOL, k[2] + ": " + dFused + ", " + dFormula);
            }
            // The fused pipeline's image (diffusers: fuse_lora, then unload_lora_weights).
            JsonNode call = p.get("fused_image_call");
            GenerationRequest.Builder b = PipelineReferenceTest.request(call.get("call_kwargs"), f)
                    .scheduler(SchedulerKind.fromName(call.get("scheduler_class").asText()));
            GenerationResult r;
            try (Generator g = Generator.seeded(call.get("seed").asLong())) {
                r = pipe.generate(b.build(), g, null, null);
            }
            double di = ReferenceData.maxAbsDiff(r.pixels(), PipelineReferenceTest.floats(f, "out_image_fused"));
            System.out.printf("%s [%s]: fused image %.3g%n", c.get("name").asText(), mode.cliName(), di);
            assertTrue(di <= IMAGE_ATOL, "fused image differs by " + di);
        }
    }

    /** (component, weight key) of every module a LoRA file of the index touches. */
    private static List<String[]> touched(String format) throws Exception {
        List<String[]> out = new ArrayList<>();
        for (JsonNode m : index().get("lora_files").get(format).get("modules")) {
            out.add(new String[] {m.get("component").asText(), m.get("module").asText() + ".weight"});
        }
        assertFalse(out.isEmpty());
        return out;
    }

    private static Map<String, float[]> snapshot(StableDiffusionXL pipe, List<String[]> keys) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (String[] k : keys) {
            out.put(k[0] + ":" + k[1], weight(pipe, k[0], k[1]));
        }
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

    @Test
    void kohyaSgmAndDiffusersNamesFuseIdentically() throws Exception {
        StableDiffusionXL pipe = pipeline();
        List<String[]> keys = touched("kohya_sgm");
        try {
            pipe.loadLora(loraFile("kohya_sgm_fp16.lora.safetensors"), 0.8);
            Map<String, float[]> sgm = snapshot(pipe, keys);
            pipe.unloadLoras();
            pipe.loadLora(loraFile("kohya_diffusers_names_fp16.lora.safetensors"), 0.8);
            assertBitIdentical(sgm, snapshot(pipe, keys), "SGM vs diffusers-style names");
        } finally {
            pipe.unloadLoras();
        }
    }

    @Test
    void unloadRestoresTheExactWeights() throws Exception {
        StableDiffusionXL pipe = pipeline();
        List<String[]> keys = new ArrayList<>(touched("kohya_sgm"));
        keys.addAll(touched("peft"));
        keys.add(new String[] {"unet", "conv_in.weight"});  // touched by neither
        Map<String, float[]> before = snapshot(pipe, keys);
        try {
            String a = pipe.loadLora(loraFile("kohya_sgm_fp16.lora.safetensors"), 1.0);
            String b = pipe.loadLora(loraFile("peft_fp32.lora.safetensors"), 0.7);
            assertEquals(List.of(a, b), new ArrayList<>(pipe.loras().keySet()));
            Map<String, float[]> both = snapshot(pipe, keys);
            assertFalse(java.util.Arrays.equals(both.get("unet:down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"),
                    before.get("unet:down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight")));
            assertArrayEquals(before.get("unet:conv_in.weight"), both.get("unet:conv_in.weight"));
            pipe.setLoraScale(a, 0.3);
            pipe.unloadLora(a);
            pipe.setLoraScale(b, 1.0);
            // Only b: equal to loading b alone.
            Map<String, float[]> onlyB = snapshot(pipe, keys);
            pipe.unloadLoras();
            assertBitIdentical(before, snapshot(pipe, keys), "after unloading everything");
            pipe.loadLora(loraFile("peft_fp32.lora.safetensors"), 1.0);
            assertBitIdentical(onlyB, snapshot(pipe, keys), "b after a was unloaded vs b alone");
        } finally {
            pipe.unloadLoras();
        }
        assertBitIdentical(before, snapshot(pipe, keys), "after unloading");
        SdxlException e = assertThrows(SdxlException.class, () -> pipe.unloadLora("nothing"));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
    }

    /** The latents of the first pipeline case's request (4 Euler steps, 64x64, guided) with the loaded LoRAs. */
    private static float[] latents(StableDiffusionXL pipe) throws Exception {
        JsonNode c = ReferenceData.cases("lora").get(0);
        JsonNode p = c.get("params");
        try (SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile("lora", c));
             Generator g = Generator.seeded(p.get("seed").asLong())) {
            GenerationRequest.Builder b = PipelineReferenceTest.request(p.get("call_kwargs"), f)
                    .scheduler(SchedulerKind.fromName(p.get("scheduler_class").asText())).output(GenerationRequest.Output.LATENT);
            return pipe.generate(b.build(), g, null, null).latents();
        }
    }

    @Test
    void unfusedAgreesWithFusedAndSwapsExactly() throws Exception {
        StableDiffusionXL pipe = pipeline();
        List<String[]> keys = new ArrayList<>(touched("kohya_sgm"));
        keys.addAll(touched("peft"));
        Map<String, float[]> weights = snapshot(pipe, keys);
        float[] none = latents(pipe);
        Path kohya = loraFile("kohya_sgm_fp16.lora.safetensors"), peft = loraFile("peft_fp32.lora.safetensors");
        try {
            double worst = 0;
            for (double[] s : new double[][] {{1.0, 0.0}, {0.8, 0.6}, {-0.5, 1.3}}) {
                pipe.unloadLoras();
                pipe.loadLora(kohya, s[0], LoraMode.FUSED);
                pipe.loadLora(peft, s[1], LoraMode.FUSED);
                float[] fused = latents(pipe);
                pipe.unloadLoras();
                String a = pipe.loadLora(kohya, 0.1, LoraMode.UNFUSED);
                String b = pipe.loadLora(peft, s[1], LoraMode.UNFUSED);
                pipe.setLoraScale(a, s[0]);  // a new scale: only the adapters change
                assertBitIdentical(weights, snapshot(pipe, keys), "unfused LoRAs must not touch the weights");
                float[] unfused = latents(pipe);
                double d = ReferenceData.maxAbsDiff(unfused, fused);
                double effect = ReferenceData.maxAbsDiff(fused, none);
                System.out.printf("unfused vs fused, scales %s: latents %.3g (the LoRAs move them by %.3g)%n",
                        java.util.Arrays.toString(s), d, effect);
                assertTrue(d <= 4e-5, "unfused vs fused latents differ by " + d);
                assertTrue(effect > 1e-2, "the LoRAs must change the latents: " + effect);
                worst = Math.max(worst, d);
                // Mixed: one fused, one unfused.
                pipe.unloadLora(a);
                pipe.loadLora(kohya, s[0], LoraMode.FUSED);
                double dm = ReferenceData.maxAbsDiff(latents(pipe), fused);
                assertTrue(dm <= 4e-5, "mixed modes vs fused: " + dm);
            }
            System.out.printf("unfused vs fused: worst %.3g%n", worst);
            pipe.unloadLoras();
            assertBitIdentical(weights, snapshot(pipe, keys), "after unloading");
            assertArrayEquals(none, latents(pipe), 0.0f, "no LoRA after unfused ones: the plain output bit for bit");
        } finally {
            pipe.unloadLoras();
        }
    }

    @Test
    void loraHashesAsA1111() throws Exception {
        StableDiffusionXL pipe = pipeline();
        try {
            assertEquals(null, pipe.loraHashes());
            pipe.loadLora(loraFile("kohya_sgm_fp16.lora.safetensors"), 0.5);
            byte[] all = Files.readAllBytes(loraFile("kohya_sgm_fp16.lora.safetensors"));
            long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            byte[] data = java.util.Arrays.copyOfRange(all, (int) (8 + n), all.length);
            String hex = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(data));
            assertEquals("kohya_sgm_fp16.lora: " + hex.substring(0, 12), pipe.loraHashes());
        } finally {
            pipe.unloadLoras();
        }
    }

    // ------------------------------------------------------------------------------------------ bad files

    /** A safetensors file with `header` and the data section of `original` (header-only mutations keep the data). */
    private static byte[] withHeader(byte[] original, ObjectNode header) throws Exception {
        long n = ByteBuffer.wrap(original, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        byte[] json = new ObjectMapper().writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer out = ByteBuffer.allocate(8 + padded + (int) (original.length - 8 - n)).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(padded).put(json);
        for (int i = json.length; i < padded; i++) {
            out.put((byte) ' ');
        }
        out.put(original, (int) (8 + n), (int) (original.length - 8 - n));
        return out.array();
    }

    private static ObjectNode header(byte[] file) throws Exception {
        long n = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return (ObjectNode) new ObjectMapper().readTree(new String(file, 8, (int) n, StandardCharsets.UTF_8));
    }

    private static List<String> names(ObjectNode h) {
        List<String> out = new ArrayList<>();
        for (Iterator<String> it = h.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!k.equals("__metadata__")) {
                out.add(k);
            }
        }
        return out;
    }

    /** One random mutation of a LoRA file: what it did (for messages) and the bytes. */
    private static Map.Entry<String, byte[]> mutate(byte[] file, Random rnd) throws Exception {
        ObjectNode h = header(file);
        List<String> keys = names(h);
        String k = keys.get(rnd.nextInt(keys.size()));
        ObjectNode t = (ObjectNode) h.get(k);
        ArrayNode shape = (ArrayNode) t.get("shape");
        switch (rnd.nextInt(8)) {
            case 0 -> {  // an unknown module: all its tensors renamed
                String module = k.substring(0, k.lastIndexOf(k.contains(".lora_") ? ".lora_" : "."));
                for (String other : keys) {
                    if (other.startsWith(module + ".")) {
                        h.set(other.replace(module, module.replace("blocks", "bl0cks")), h.remove(other));
                    }
                }
                return Map.entry("unknown module " + module, withHeader(file, h));
            }
            case 1 -> {  // a missing up/down (its key renamed)
                h.set(k.replace("weight", "wieght"), h.remove(k));
                return Map.entry("renamed " + k, withHeader(file, h));
            }
            case 2 -> {  // a reshaped tensor (same bytes): swapped dims, or one dim split
                if (shape.size() >= 2) {
                    long a = shape.get(0).asLong();
                    shape.set(0, shape.get(1));
                    shape.set(1, a);
                } else {
                    shape.removeAll();
                    shape.add(1).add(1);
                }
                return Map.entry("reshaped " + k + " to " + shape, withHeader(file, h));
            }
            case 3 -> {  // another dtype of the same size
                String d = t.get("dtype").asText();
                String[] same = d.equals("F32") ? new String[] {"I32", "U32"} : new String[] {"I16", "BF16", "U16"};
                t.put("dtype", same[rnd.nextInt(same.length)]);
                return Map.entry(k + " as " + t.get("dtype").asText(), withHeader(file, h));
            }
            case 4 -> {  // a stray key
                h.set("lora_unet_" + k.replace('.', '_') + ".hada_w1_a", h.remove(k));
                return Map.entry("stray key from " + k, withHeader(file, h));
            }
            case 5 -> {  // header bytes flipped
                byte[] out = file.clone();
                long n = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
                for (int i = 0; i < 1 + rnd.nextInt(4); i++) {
                    out[8 + rnd.nextInt((int) n)] ^= (byte) (1 << rnd.nextInt(8));
                }
                return Map.entry("flipped header bits", out);
            }
            case 6 -> {  // truncated
                return Map.entry("truncated", java.util.Arrays.copyOf(file, rnd.nextInt(file.length)));
            }
            default -> {  // a tensor of another module's shape (same numel only by chance: offsets then fail)
                String other = keys.get(rnd.nextInt(keys.size()));
                t.set("shape", h.get(other).get("shape").deepCopy());
                return Map.entry(k + " with the shape of " + other, withHeader(file, h));
            }
        }
    }

    @Test
    void mutatedFilesGiveClearErrors(@TempDir Path dir) throws Exception {
        StableDiffusionXL pipe = pipeline();
        List<String[]> keys = new ArrayList<>(touched("kohya_sgm"));
        keys.addAll(touched("peft"));
        Map<String, float[]> before = snapshot(pipe, keys);
        Random rnd = new Random(13);
        byte[][] sources = {Files.readAllBytes(loraFile("kohya_sgm_fp16.lora.safetensors")),
                Files.readAllBytes(loraFile("peft_fp32.lora.safetensors"))};
        int refused = 0, loaded = 0;
        Map<ErrorCode, Integer> codes = new java.util.TreeMap<>();
        for (int i = 0; i < 300; i++) {
            Map.Entry<String, byte[]> m = mutate(sources[i % 2], rnd);
            Path f = dir.resolve("m" + i + ".safetensors");
            Files.write(f, m.getValue());
            try {
                pipe.loadLora(f, 0.9, i % 3 == 0 ? LoraMode.UNFUSED : LoraMode.FUSED, i % 5 == 0);
                loaded++;  // e.g. BF16 for F16, flipped bits in a float, or a lenient file
                pipe.unloadLoras();
            } catch (SdxlException e) {
                refused++;
                codes.merge(e.code(), 1, Integer::sum);
                assertTrue(e.code() == ErrorCode.BAD_MODEL_FILE, m.getKey() + ": " + e.code() + " " + e.getMessage());
                assertTrue(e.getMessage().contains(f.toString()) || e.getMessage().contains("match no weight"),
                        m.getKey() + ": the message names neither the file nor the modules: " + e.getMessage());
                assertTrue(pipe.loras().isEmpty());
            }
            Files.delete(f);
        }
        System.out.printf("mutated LoRA files: %d refused %s, %d loaded%n", refused, codes, loaded);
        assertTrue(refused > 200, "most mutations must be refused: " + refused);
        assertBitIdentical(before, snapshot(pipe, keys), "after 300 mutated files");
    }

    @Test
    void cliAppliesLorasFromOptionsAndPromptTags(@TempDir Path dir) throws Exception {
        for (String mode : new String[] {"fused", "unfused"}) {
            cliRun(dir, mode);
        }
        int rc = new picocli.CommandLine(new io.sdxl4j.cli.Generate()).execute("--model",
                root().resolve("models/tiny-sdxl-base").toString(), "--lora", loraFile("peft_fp32.lora.safetensors")
                        .toString(), "--lora-mode", "sideways", "-p", "a cat", "--steps", "1", "-W", "64", "-H", "64",
                "-o", dir.resolve("y.png").toString());
        assertTrue(rc != 0, "an unknown --lora-mode must be refused");
    }

    private static void cliRun(Path dir, String mode) throws Exception {
        Path out = dir.resolve(mode + ".png");
        int rc = new picocli.CommandLine(new io.sdxl4j.cli.Generate()).execute("--model",
                root().resolve("models/tiny-sdxl-base").toString(), "--lora",
                loraFile("peft_fp32.lora.safetensors") + ":0.5", "--lora-dir", root().resolve("cases/lora").toString(),
                "--lora-mode", mode, "-p", "a cat <lora:kohya_sgm_fp16.lora:0.7>", "--steps", "2", "-W", "64", "-H",
                "64", "--seed", "1", "--no-watermark", "-o", out.toString());
        assertEquals(0, rc, mode);
        String png = new String(Files.readAllBytes(out), StandardCharsets.ISO_8859_1);
        // The prompt as written, with the --lora file as a tag too, so A1111 replaying the infotext applies both.
        assertTrue(png.contains("a cat <lora:kohya_sgm_fp16.lora:0.7> <lora:peft_fp32.lora:0.5>\n"),
                "the prompt as written plus the --lora tag");
        try (io.sdxl4j.models.LoraFile a = io.sdxl4j.models.LoraFile.open(loraFile("peft_fp32.lora.safetensors"), false);
             io.sdxl4j.models.LoraFile b = io.sdxl4j.models.LoraFile.open(loraFile("kohya_sgm_fp16.lora.safetensors"), false)) {
            String hashes = "Lora hashes: \"peft_fp32.lora: " + a.a1111Hash() + ", kohya_sgm_fp16.lora: " + b.a1111Hash() + "\"";
            assertTrue(png.contains(hashes), "infotext has " + hashes);
        }
    }
}
