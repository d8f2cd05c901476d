package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.io.SafetensorsFile;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case of cases/pipelines through the public API ({@link StableDiffusionXL}, {@link Refiner},
 * {@link GenerationRequest}): the timesteps run exactly; the final latents, every step's latents and the image
 * within 1e-3 absolute (the reference README's bound for an independent float32 implementation; its own
 * float32-vs-float64 run differs by 9.4e-6 in latents); the conditioning fed to the UNet at step 0 (CFG batch
 * [negative, positive], pooled embeddings, time ids) within 1e-4.
 *
 * <p>Case parameters are read from index.json: the pipeline kind, scheduler class + overrides, seed, watermark
 * and diffusers' call kwargs, mapped one to one onto the request builder. A case without its own call (the
 * float64 note) runs the case its note names with the stored initial latents.
 */
class PipelineReferenceTest {
    private static final double ATOL = 1e-3;
    private static final double COND_ATOL = 1e-4;
    private static final Map<String, StableDiffusionXL> BASES = new HashMap<>();
    private static final Map<String, Refiner> REFINERS = new HashMap<>();

    /**
     * The device the pipelines run on: the system property {@code sdxl4j.test.device} ({@code cpu}, the default, or
     * {@code cuda}: the emulated-CUDA test run, see {@link EmulatedCudaPipelineTest}), always in F32.
     */
    static Device device() {
        return System.getProperty("sdxl4j.test.device", "cpu").equalsIgnoreCase("cuda") ? Device.CUDA : Device.CPU;
    }

    static StableDiffusionXL base(String model, boolean watermark) {
        return BASES.computeIfAbsent(model + watermark, k -> StableDiffusionXL.load(ReferenceData.root().resolve(model),
                PipelineOptions.defaults().withWatermark(watermark).withDevice(device())));
    }

    static Refiner refiner(String model) {
        return REFINERS.computeIfAbsent(model, k -> Refiner.load(ReferenceData.root().resolve(model),
                PipelineOptions.defaults().withWatermark(false).withDevice(device())));
    }

    /** The cases this class runs: all of index.json. */
    protected List<JsonNode> selectCases(List<JsonNode> all) {
        return all;
    }

    @AfterAll
    static void close() {
        REFINERS.values().forEach(Refiner::close);
        BASES.values().forEach(StableDiffusionXL::close);
    }

    @TestFactory
    Stream<DynamicTest> everyCase() {
        List<JsonNode> cases = ReferenceData.cases("pipelines");
        return selectCases(cases).stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c, cases)));
    }

    private static void run(JsonNode c, List<JsonNode> all) {
        JsonNode p = c.get("params");
        Path file = ReferenceData.caseFile("pipelines", c);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            String kind = p.path("pipeline").asText("");
            if (kind.contains("->")) {
                runBaseThenRefiner(c, p, f, file);
            } else if (kind.equals("StableDiffusionXLImg2ImgPipeline")) {
                runSingle(c, p, f, file, "", true, null);
            } else if (kind.equals("StableDiffusionXLPipeline")) {
                runSingle(c, p, f, file, "", false, null);
            } else {
                runWithGivenLatents(c, p, f, all);
            }
        }
    }

    // ---- one pipeline call, compared with out_latents / out_image / step_* / step0_*
    private static void runSingle(JsonNode c, JsonNode p, SafetensorsFile f, Path file, String prefix, boolean img2img,
                                  float[] givenLatents) {
        GenerationRequest.Builder b = request(p.get("call_kwargs"), f);
        b.scheduler(SchedulerKind.fromName(p.has("scheduler_class") ? p.get("scheduler_class").asText() : p.get("scheduler").asText()));
        overrides(p.get("scheduler_overrides"), b);
        if (givenLatents != null) {
            b.latents(givenLatents);
        }
        Recorder rec = new Recorder();
        GenerationResult result;
        try (Generator g = Generator.seeded(p.get("seed").asLong())) {
            if (img2img) {
                result = refiner(p.get("model").asText()).generate(b.build(), g, rec);
            } else {
                result = base(p.get("model").asText(), p.path("watermark").asBoolean(false)).generate(b.build(), g, rec);
            }
        }
        compare(c, f, file, prefix, result, rec);
        if (c.has("compel_prompt")) {
            runCompelSyntax(c, p, f, file);
        }
    }

    // The compel cases again from the prompt text: the pipeline's COMPEL syntax must give what diffusers got
    // from compel's embeddings.
    private static void runCompelSyntax(JsonNode c, JsonNode p, SafetensorsFile f, Path file) {
        GenerationRequest.Builder b = GenerationRequest.builder();
        p.get("call_kwargs").fields().forEachRemaining(e -> {
            switch (e.getKey()) {
                case "num_inference_steps" -> b.steps(e.getValue().asInt());
                case "height" -> b.height(e.getValue().asInt());
                case "width" -> b.width(e.getValue().asInt());
                default -> { }
            }
        });
        b.syntax(PromptSyntax.COMPEL).prompt(c.get("compel_prompt").asText())
                .negativePrompt(c.has("compel_negative_prompt") ? c.get("compel_negative_prompt").asText() : null)
                .truncateLongPrompts(c.path("compel_truncate_long_prompts").asBoolean(true))
                .scheduler(SchedulerKind.fromName(p.get("scheduler_class").asText()));
        Recorder rec = new Recorder();
        GenerationResult r;
        try (Generator g = Generator.seeded(p.get("seed").asLong())) {
            r = base(p.get("model").asText(), false).generate(b.build(), g, rec);
        }
        double dPe = ReferenceData.maxAbsDiff(rec.cond.embeds(), floats(f, "step0_prompt_embeds"));
        double dl = ReferenceData.maxAbsDiff(r.latents(), floats(f, "out_latents"));
        double di = ReferenceData.maxAbsDiff(r.pixels(), floats(f, "out_image"));
        System.out.printf("%s via PromptSyntax.COMPEL: latents %.3g, prompt_embeds %.3g, image %.3g%n",
                c.get("name").asText(), dl, dPe, di);
        assertTrue(dPe <= COND_ATOL && dl <= ATOL && di <= ATOL, c.get("name").asText() + " via COMPEL syntax: prompt_embeds "
                + dPe + ", latents " + dl + ", image " + di);
    }

    // ---- base (denoising_end, latents) then the refiner (denoising_start) with ONE generator continuing
    private static void runBaseThenRefiner(JsonNode c, JsonNode p, SafetensorsFile f, Path file) {
        SchedulerKind kind = SchedulerKind.fromName(p.get("scheduler").asText());
        GenerationRequest.Builder baseReq = request(p.get("base_call"), f).scheduler(kind);
        Recorder baseRec = new Recorder();
        Recorder refRec = new Recorder();
        StableDiffusionXL base = base(p.get("base_model").asText(), false);
        Refiner refiner = refiner(p.get("refiner_model").asText());
        try (Generator g = Generator.seeded(p.get("seed").asLong())) {
            GenerationResult latents = base.generate(baseReq.build(), g, baseRec);
            assertTrue(!latents.hasImages(), "base call asked for latents");
            compare(c, f, file, "base_", latents, baseRec);
            GenerationRequest.Builder refReq = request(p.get("refiner_call"), f).scheduler(kind);
            long[] s = latents.latentShape();
            refReq.image(ImageInput.latents(latents.latents(), (int) s[0], (int) s[1], (int) s[2], (int) s[3]));
            GenerationResult out = refiner.generate(refReq.build(), g, refRec);
            compare(c, f, file, "refiner_", out, refRec);
        }
    }

    // ---- "cXX with latents=<the same initial noise>": the named case's call with the stored latents_in
    private static void runWithGivenLatents(JsonNode c, JsonNode p, SafetensorsFile f, List<JsonNode> all) {
        Matcher m = Pattern.compile("^(\\S+) with latents=").matcher(p.path("note").asText(""));
        assertTrue(m.find(), c.get("name").asText() + ": unknown case form " + p);
        JsonNode named = all.stream().filter(x -> x.get("name").asText().equals(m.group(1))).findFirst().orElseThrow();
        float[] in = floats(f, "latents_in");
        GenerationRequest.Builder b = request(named.get("params").get("call_kwargs"), f)
                .scheduler(SchedulerKind.fromName(named.get("params").get("scheduler_class").asText())).latents(in);
        GenerationResult r;
        try (Generator g = Generator.seeded(named.get("params").get("seed").asLong())) {
            r = base(named.get("params").get("model").asText(), false).generate(b.build(), g, new Recorder());
        }
        for (String precision : new String[] {"fp32", "fp64"}) {
            double dl = ReferenceData.maxAbsDiff(r.latents(), floats(f, "out_latents_" + precision));
            double di = ReferenceData.maxAbsDiff(r.pixels(), floats(f, "out_image_" + precision));
            System.out.printf("%s: latents vs %s %.3g, image %.3g%n", c.get("name").asText(), precision, dl, di);
            assertTrue(dl <= ATOL && di <= ATOL, c.get("name").asText() + " " + precision + ": latents " + dl + ", image " + di);
        }
    }

    /** diffusers call kwargs -> request builder (the names are the same, in camel case). */
    static GenerationRequest.Builder request(JsonNode kw, SafetensorsFile f) {
        GenerationRequest.Builder b = GenerationRequest.builder();
        Iterator<Map.Entry<String, JsonNode>> it = kw.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode v = e.getValue();
            switch (e.getKey()) {
                case "prompt" -> b.prompts(strings(v));
                case "prompt_2" -> b.prompts2(strings(v));
                case "negative_prompt" -> b.negativePrompts(strings(v));
                case "negative_prompt_2" -> b.negativePrompts2(strings(v));
                case "num_inference_steps" -> b.steps(v.asInt());
                case "height" -> b.height(v.asInt());
                case "width" -> b.width(v.asInt());
                case "guidance_scale" -> b.guidanceScale(v.asDouble());
                case "guidance_rescale" -> b.guidanceRescale(v.asDouble());
                case "num_images_per_prompt" -> b.imagesPerPrompt(v.asInt());
                case "original_size" -> b.originalSize(v.get(0).asInt(), v.get(1).asInt());
                case "target_size" -> b.targetSize(v.get(0).asInt(), v.get(1).asInt());
                case "crops_coords_top_left" -> b.cropsCoordsTopLeft(v.get(0).asInt(), v.get(1).asInt());
                case "negative_original_size" -> b.negativeOriginalSize(v.get(0).asInt(), v.get(1).asInt());
                case "negative_target_size" -> b.negativeTargetSize(v.get(0).asInt(), v.get(1).asInt());
                case "negative_crops_coords_top_left" -> b.negativeCropsCoordsTopLeft(v.get(0).asInt(), v.get(1).asInt());
                case "denoising_end" -> b.denoisingEnd(v.asDouble());
                case "denoising_start" -> b.denoisingStart(v.asDouble());
                case "strength" -> b.strength(v.asDouble());
                case "aesthetic_score" -> b.aestheticScore(v.asDouble());
                case "negative_aesthetic_score" -> b.negativeAestheticScore(v.asDouble());
                case "output_type" -> b.output("latent".equals(v.asText()) ? GenerationRequest.Output.LATENT
                        : GenerationRequest.Output.IMAGE);
                case "image" -> {
                    if (v.asText().startsWith("<input_image")) {
                        long[] s = f.shape("input_image");
                        b.image(ImageInput.pixels(floats(f, "input_image"), (int) s[0], (int) s[2], (int) s[3]));
                    }  // "<base_out_latents>": set by the caller
                }
                case "prompt_embeds", "pooled_prompt_embeds", "negative_prompt_embeds", "negative_pooled_prompt_embeds" -> {
                    // handled together below
                }
                default -> throw new AssertionError("call kwarg not mapped: " + e.getKey());
            }
        }
        if (kw.has("prompt_embeds")) {
            b.embeddings(new PromptEmbeddings(f.tensor("input_prompt_embeds"), f.tensor("input_pooled_prompt_embeds"),
                    kw.has("negative_prompt_embeds") ? f.tensor("input_negative_prompt_embeds") : null,
                    kw.has("negative_pooled_prompt_embeds") ? f.tensor("input_negative_pooled_prompt_embeds") : null));
        }
        return b;
    }

    static void overrides(JsonNode o, GenerationRequest.Builder b) {
        if (o == null) {
            return;
        }
        o.fields().forEachRemaining(e -> {
            JsonNode v = e.getValue();
            b.schedulerOverride(e.getKey(), v.isBoolean() ? (Object) v.asBoolean() : v.isIntegralNumber() ? (Object) v.asLong()
                    : v.isNumber() ? (Object) v.asDouble() : v.asText());
        });
    }

    static float[] floats(SafetensorsFile f, String name) {
        try (Tensor t = f.tensorF32(name)) {
            return t.toFloatArray();
        }
    }

    private static List<String> strings(JsonNode v) {
        List<String> out = new ArrayList<>();
        if (v.isArray()) {
            v.forEach(x -> out.add(x.asText()));
        } else {
            out.add(v.asText());
        }
        return out;
    }

    /** Records the step latents and step-0 conditioning of one call. */
    static final class Recorder implements StepCallback, SdxlEngine.ConditioningObserver {
        final List<float[]> steps = new ArrayList<>();
        final List<Double> timesteps = new ArrayList<>();
        SdxlEngine.Cond cond;
        float[] timeIds;

        @Override
        public void onStep(StepInfo s) {
            steps.add(s.latents());
            timesteps.add(s.timestep());
        }

        @Override
        public void observe(SdxlEngine.Cond c, float[] ids, int perRow) {
            cond = c;
            timeIds = ids;
        }
    }

    static void compare(JsonNode c, SafetensorsFile f, Path file, String prefix, GenerationResult r, Recorder rec) {
        String name = c.get("name").asText() + (prefix.isEmpty() ? "" : " " + prefix.replace("_", ""));
        // timesteps: exactly
        double[] stepT = ReferenceData.doubles(file, prefix + "step_t");
        assertArrayEquals(stepT, r.timesteps(), 0.0, name + ": timesteps");
        // step 0 conditioning
        double dPe = ReferenceData.maxAbsDiff(rec.cond.embeds(), floats(f, prefix + "step0_prompt_embeds"));
        double dTe = ReferenceData.maxAbsDiff(rec.cond.pooled(), floats(f, prefix + "step0_add_text_embeds"));
        double dTi = ReferenceData.maxAbsDiff(rec.timeIds, floats(f, prefix + "step0_add_time_ids"));
        assertTrue(dPe <= COND_ATOL && dTe <= COND_ATOL && dTi == 0.0,
                name + ": step-0 conditioning differs: prompt_embeds " + dPe + ", text_embeds " + dTe + ", time_ids " + dTi);
        // every step's latents (the first differing step says where a mismatch starts)
        float[] stepLatents = floats(f, prefix + "step_latents");
        assertEquals(stepT.length, rec.steps.size(), name + ": number of steps");
        int per = stepLatents.length / stepT.length;
        double worstStep = 0;
        for (int i = 0; i < rec.steps.size(); i++) {
            float[] ref = java.util.Arrays.copyOfRange(stepLatents, i * per, (i + 1) * per);
            double d = ReferenceData.maxAbsDiff(rec.steps.get(i), ref);
            assertTrue(d <= ATOL, name + ": latents after step " + i + " (t=" + stepT[i] + ") differ by " + d);
            worstStep = Math.max(worstStep, d);
        }
        String outLatents = prefix.equals("base_") ? "base_out_latents" : prefix.equals("refiner_") ? "refiner_out_latents" : "out_latents";
        double dl = ReferenceData.maxAbsDiff(r.latents(), floats(f, outLatents));
        assertTrue(dl <= ATOL, name + ": final latents differ by " + dl);
        String report = String.format("%s: latents %.3g (worst step %.3g), prompt_embeds %.3g", name, dl, worstStep, dPe);
        if (r.hasImages()) {
            double di = ReferenceData.maxAbsDiff(r.pixels(), floats(f, "out_image"));
            report += String.format(", image %.3g", di);
            assertTrue(di <= ATOL, name + ": image differs by " + di);
        }
        System.out.println(report);
    }
}
