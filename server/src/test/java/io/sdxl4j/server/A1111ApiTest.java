package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.Generator;
import io.sdxl4j.ImageInput;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.PromptSyntax;
import io.sdxl4j.Refiner;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.StableDiffusionXL;
import io.sdxl4j.images.GenerationParameters;
import io.sdxl4j.images.Images;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The AUTOMATIC1111 routes with request bodies shaped as A1111's documented examples (the API wiki page's payload
 * and its linked txt2img/img2img example script), on the tiny model: images equal the Java API's for the same seeds
 * (seed + i per image, as A1111 numbers them), the infotext in {@code info} and in each PNG parses back to the
 * request, and {@code parameters} echoes it.
 */
class A1111ApiTest {
    private static Server server;
    private static StableDiffusionXL javaApi;
    private static Refiner javaApiRefiner;
    @TempDir
    static Path tmp;

    @BeforeAll
    static void start() {
        server = TestSupport.start(ServerConfig.defaults(), true);
        javaApi = StableDiffusionXL.load(TestSupport.tinyBase());
        javaApiRefiner = javaApi.loadRefiner(TestSupport.tinyRefiner(), PipelineOptions.defaults());
    }

    @AfterAll
    static void stop() {
        server.close();
        javaApiRefiner.close();
        javaApi.close();
    }

    private static JsonNode ok(HttpResponse<String> r) {
        assertEquals(200, r.statusCode(), r.body());
        try {
            return Fields.JSON.readTree(r.body());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static JsonNode info(JsonNode response) {
        try {
            return Fields.JSON.readTree(response.get("info").asText());  // A1111 sends info as a JSON string
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The "parameters" text chunk of a base64 PNG. */
    private static String pngParameters(String base64) throws IOException {
        Path f = Files.createTempFile(tmp, "img", ".png");
        Files.write(f, Base64.getDecoder().decode(base64));
        return Images.readPngText(f).get("parameters");
    }

    @Test
    void wikiPayloadUsesTheDefaults() throws IOException {
        // The API wiki page's payload, as it is.
        JsonNode r = ok(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\": \"maltese puppy\", \"steps\": 5}", null));
        assertEquals(1, r.get("images").size());
        BufferedImage img = TestSupport.png(r.get("images").get(0).asText(), 64, 64);  // the tiny model's default size
        JsonNode info = info(r);
        long seed = info.get("seed").asLong();  // a random seed, reported
        assertTrue(seed >= 0 && seed < 4294967295L, "random seed " + seed);
        assertEquals(-1, r.get("parameters").get("seed").asLong(), "parameters echo the request's seed -1");
        // A1111's defaults: cfg_scale 7; the sampler the model's own.
        TestSupport.assertSamePixels(javaApi.generate(GenerationRequest.builder().syntax(PromptSyntax.A1111).prompt("maltese puppy").steps(5)
                .guidanceScale(7.0).size(64, 64).seed(seed).build()).image(0), img, "wiki payload");
        GenerationParameters p = GenerationParameters.parse(info.get("infotexts").get(0).asText());
        assertEquals(seed, p.seed().getAsLong());
        assertEquals(5, p.steps().getAsInt());
    }

    @Test
    void exampleScriptTxt2imgEqualsTheJavaApiAndItsInfotextParsesBack() throws IOException {
        // The txt2img payload of the example script the wiki links (its sizes made tiny-model sized).
        String body = """
                {
                    "prompt": "masterpiece, (best quality:1.1), 1girl",
                    "negative_prompt": "lowres",
                    "seed": 1,
                    "steps": 20,
                    "width": 64,
                    "height": 48,
                    "cfg_scale": 7,
                    "sampler_name": "DPM++ 2M",
                    "n_iter": 2,
                    "batch_size": 2
                }""";
        JsonNode r = ok(TestSupport.post(server, "/sdapi/v1/txt2img", body, null));
        assertEquals(4, r.get("images").size(), "n_iter x batch_size images");
        JsonNode info = info(r);
        JsonNode request = Fields.JSON.readTree(body);
        for (int i = 0; i < 4; i++) {
            String b64 = r.get("images").get(i).asText();
            BufferedImage img = TestSupport.png(b64, 64, 48);
            GenerationRequest javaRequest = GenerationRequest.builder().syntax(PromptSyntax.A1111).prompt("masterpiece, (best quality:1.1), 1girl")
                    .negativePrompt("lowres").steps(20).guidanceScale(7.0).size(48, 64).seed(1L + i)
                    .scheduler(SchedulerKind.DPMPP_2M).build();
            TestSupport.assertSamePixels(javaApi.generate(javaRequest).image(0), img, "image " + i);
            if (i == 0) {  // the emphasis "(best quality:1.1)" was read as A1111 reads it, not as plain text
                assertTrue(TestSupport.differ(javaApi.generate(javaRequest.toBuilder().syntax(PromptSyntax.PLAIN).build())
                        .image(0), img), "A1111 syntax made a difference");
            }
            assertEquals(1 + i, info.get("all_seeds").get(i).asLong());

            // The infotext, in info and in the PNG itself, parses back to the request.
            String infotext = info.get("infotexts").get(i).asText();
            assertEquals(infotext, pngParameters(b64), "the PNG carries the same infotext");
            GenerationParameters p = GenerationParameters.parse(infotext);
            assertEquals(request.get("prompt").asText(), p.prompt());
            assertEquals(request.get("negative_prompt").asText(), p.negativePrompt());
            assertEquals(request.get("steps").asInt(), p.steps().getAsInt());
            assertEquals(request.get("sampler_name").asText(), p.sampler().orElseThrow());
            assertEquals(request.get("cfg_scale").asDouble(), p.cfgScale().getAsDouble());
            assertEquals(request.get("seed").asLong() + i, p.seed().getAsLong());
            assertEquals(request.get("width").asInt(), p.width().getAsInt());
            assertEquals(request.get("height").asInt(), p.height().getAsInt());
            assertEquals("tiny-sdxl-base", p.get("Model").orElseThrow());
        }
        // parameters echo the request.
        JsonNode params = r.get("parameters");
        request.fields().forEachRemaining(e -> {
            if (e.getValue().isNumber()) {
                assertEquals(e.getValue().asDouble(), params.get(e.getKey()).asDouble(), e.getKey());
            } else {
                assertEquals(e.getValue().asText(), params.get(e.getKey()).asText(), e.getKey());
            }
        });
        assertEquals("DPM++ 2M", info.get("sampler_name").asText());
        assertEquals(2, info.get("batch_size").asInt());
        assertEquals("tiny-sdxl-base", info.get("sd_model_name").asText());
    }

    @Test
    void samplerAndScheduleType() throws IOException {
        // A1111 1.9+: the schedule type apart from the sampler.
        JsonNode r = ok(TestSupport.post(server, "/sdapi/v1/txt2img", """
                {"prompt": "a fox", "seed": 5, "steps": 6, "width": 64, "height": 64, "sampler_name": "DPM++ 2M",
                 "scheduler": "Karras", "override_settings": {"sd_model_checkpoint": "tiny-sdxl-base",
                 "CLIP_stop_at_last_layers": 1}, "override_settings_restore_afterwards": true}""", null));
        BufferedImage img = TestSupport.png(r.get("images").get(0).asText(), 64, 64);
        TestSupport.assertSamePixels(javaApi.generate(GenerationRequest.builder().syntax(PromptSyntax.A1111).prompt("a fox").steps(6).guidanceScale(7.0)
                .size(64, 64).seed(5L).scheduler(SchedulerKind.DPMPP_2M_KARRAS).build()).image(0), img, "Karras");
        assertEquals("DPM++ 2M Karras", GenerationParameters.parse(info(r).get("infotexts").get(0).asText()).sampler().orElseThrow());
    }

    @Test
    void exampleScriptImg2imgEqualsTheJavaApi() throws IOException {
        // An init image of another size (A1111 resizes it to width x height, mode 0 "just resize").
        BufferedImage init = new BufferedImage(80, 72, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 72; y++) {
            for (int x = 0; x < 80; x++) {
                init.setRGB(x, y, (x * 3) << 16 | (y * 3) << 8 | ((x + y) & 0xff));
            }
        }
        String b64 = Png.base64(Png.encode(init, null));
        // The img2img payload of the example script the wiki links.
        String body = """
                {
                    "prompt": "1girl, blue hair",
                    "seed": 1,
                    "steps": 20,
                    "width": 64,
                    "height": 64,
                    "denoising_strength": 0.5,
                    "n_iter": 1,
                    "init_images": ["data:image/png;base64,%s"],
                    "batch_size": 1
                }""".formatted(b64);
        JsonNode r = ok(TestSupport.post(server, "/sdapi/v1/img2img", body, null));
        BufferedImage img = TestSupport.png(r.get("images").get(0).asText(), 64, 64);
        int[] hw = new int[2];
        float[] pixels = Images.preprocess(Images.resizeLanczos(init, 64, 64), hw);
        try (Refiner img2img = Refiner.load(TestSupport.tinyBase())) {
            GenerationResult expected = img2img.generate(GenerationRequest.builder().syntax(PromptSyntax.A1111).prompt("1girl, blue hair").steps(20)
                    .guidanceScale(7.0).seed(1L).strength(0.5).image(ImageInput.pixels(pixels, 1, hw[0], hw[1])).build());
            TestSupport.assertSamePixels(expected.image(0), img, "img2img");
        }
        GenerationParameters p = GenerationParameters.parse(info(r).get("infotexts").get(0).asText());
        assertEquals(0.5, p.denoisingStrength().getAsDouble());
        assertEquals("1girl, blue hair", p.prompt());
        assertTrue(r.get("parameters").get("init_images").isNull(), "init images not echoed (include_init_images false)");
    }

    @Test
    void refinerCheckpointRunsTheEnsembleOfExperts() {
        JsonNode r = ok(TestSupport.post(server, "/sdapi/v1/txt2img", """
                {"prompt": "a castle", "seed": 9, "steps": 10, "width": 64, "height": 64, "cfg_scale": 5,
                 "refiner_checkpoint": "tiny-sdxl-refiner", "refiner_switch_at": 0.7}""", null));
        BufferedImage img = TestSupport.png(r.get("images").get(0).asText(), 64, 64);
        GenerationRequest request = GenerationRequest.builder().syntax(PromptSyntax.A1111).prompt("a castle").steps(10).guidanceScale(5.0)
                .size(64, 64).seed(9L).build();
        try (Generator g = Generator.seeded(9)) {
            GenerationResult latents = javaApi.generate(request.toBuilder().denoisingEnd(0.7)
                    .output(GenerationRequest.Output.LATENT).build(), g, null, null);
            long[] s = latents.latentShape();
            GenerationResult refined = javaApiRefiner.generate(GenerationRequest.builder().syntax(PromptSyntax.A1111).prompt("a castle").steps(10)
                    .guidanceScale(5.0).seed(9L).denoisingStart(0.7)
                    .image(ImageInput.latents(latents.latents(), (int) s[0], (int) s[1], (int) s[2], (int) s[3])).build(),
                    g, null, null);
            TestSupport.assertSamePixels(refined.image(0), img, "base + refiner");
        }
        GenerationParameters p = GenerationParameters.parse(info(r).get("infotexts").get(0).asText());
        assertEquals("tiny-sdxl-refiner", p.get("Refiner").orElseThrow());
        assertEquals("0.7", p.get("Refiner switch at").orElseThrow());
    }

    @Test
    void listsAndOptions() {
        JsonNode samplers = ok(TestSupport.get(server, "/sdapi/v1/samplers", null));
        boolean karras = false;
        for (JsonNode s : samplers) {
            karras |= s.get("name").asText().equals("DPM++ 2M Karras") && s.get("options").get("scheduler").asText().equals("karras");
        }
        assertTrue(karras, samplers.toString());
        assertEquals(SchedulerKind.values().length, samplers.size());
        assertEquals(4, ok(TestSupport.get(server, "/sdapi/v1/schedulers", null)).size());

        JsonNode models = ok(TestSupport.get(server, "/sdapi/v1/sd-models", null));
        assertEquals("tiny-sdxl-base", models.get(0).get("model_name").asText());
        assertEquals("tiny-sdxl-refiner", models.get(1).get("model_name").asText());
        assertTrue(!models.toString().contains("/"), "no server paths: " + models);

        JsonNode options = ok(TestSupport.get(server, "/sdapi/v1/options", null));
        assertEquals("tiny-sdxl-base", options.get("sd_model_checkpoint").asText());
        assertEquals(0.0, options.get("eta_ddim").asDouble());
        // POST sets what applies, ignores keys it does not know (as A1111 does) and refuses what it cannot do.
        assertEquals(200, TestSupport.post(server, "/sdapi/v1/options", "{\"eta_ddim\": 0.25, \"show_progressbar\": true}",
                null).statusCode());
        assertEquals(0.25, ok(TestSupport.get(server, "/sdapi/v1/options", null)).get("eta_ddim").asDouble());
        assertEquals(400, TestSupport.post(server, "/sdapi/v1/options", "{\"sd_model_checkpoint\": \"other\"}", null).statusCode());
        assertEquals(200, TestSupport.post(server, "/sdapi/v1/options", "{\"eta_ddim\": 0}", null).statusCode());
    }
}
