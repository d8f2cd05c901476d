package io.sdxl4j.springai;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.springframework.ai.content.Media;
import org.springframework.ai.image.ImageGeneration;
import org.springframework.ai.image.ImageMessage;
import org.springframework.ai.image.ImageModel;
import org.springframework.ai.image.ImageOptions;
import org.springframework.ai.image.ImageOptionsBuilder;
import org.springframework.ai.image.ImagePrompt;
import org.springframework.ai.image.ImageResponse;
import org.springframework.util.MimeTypeUtils;

/**
 * The adapter against Spring AI's real {@link ImageModel} interface with the bundled tiny SDXL: images are PNGs of
 * the asked size whose bytes equal the Java API's for the same seed and parameters; the portable options (n, width,
 * height, responseFormat, model, style) and sdxl4j's (seed, steps, guidance, negative prompt, scheduler) are honoured
 * or refused with a message naming them. One pipeline for the class; small images and 3 steps.
 */
class Sdxl4jImageModelTest {
    private static final String PROMPT = "a red bicycle leaning on a wall";
    static Path modelFolder;
    private static StableDiffusionXL base;
    private static Sdxl4jImageModel model;

    @BeforeAll
    static void load() {
        modelFolder = modelFolder();
        base = StableDiffusionXL.load(modelFolder);
        model = new Sdxl4jImageModel(base, defaults().build());
    }

    @AfterAll
    static void close() {
        model.close();
        base.close();
    }

    static Path modelFolder() {
        return Path.of(System.getProperty("sdxl4j.reference", "../java/src/test/resources/reference"))
                .resolve("models/tiny-sdxl-base");
    }

    /** The model's defaults in these tests: 3 Euler a steps of a 64-wide, 48-high image. */
    private static Sdxl4jImageOptions.Builder defaults() {
        return Sdxl4jImageOptions.builder().steps(3).width(64).height(48).guidanceScale(4.0).scheduler("Euler a")
                .negativePrompt("blurry").seed(42L);
    }

    /** The same call through the Java API. */
    private static GenerationRequest.Builder javaApi(long seed) {
        return GenerationRequest.builder().prompt(PROMPT).steps(3).size(48, 64).guidanceScale(4.0).negativePrompt("blurry")
                .scheduler(SchedulerKind.EULER_A).seed(seed);
    }

    static byte[] png(ImageGeneration g) {
        assertNull(g.getOutput().getUrl());
        return Base64.getDecoder().decode(g.getOutput().getB64Json());
    }

    static BufferedImage decode(byte[] png) throws IOException {
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(png));
        assertTrue(img != null, "not a decodable image");
        return img;
    }

    @Test
    void callGivesTheJavaApisPngForTheSameSeed() throws IOException {
        ImageModel asInterface = model;
        ImageResponse r = asInterface.call(new ImagePrompt(PROMPT));
        assertEquals(1, r.getResults().size());
        byte[] png = png(r.getResult());
        BufferedImage img = decode(png);
        assertEquals(64, img.getWidth());
        assertEquals(48, img.getHeight());

        GenerationResult expected = base.generate(javaApi(42L).build());
        assertArrayEquals(expected.pngBytes(0), png, "the same PNG bytes (pixels and infotext) as the Java API");
        Sdxl4jGenerationMetadata meta = (Sdxl4jGenerationMetadata) r.getResult().getMetadata();
        assertEquals(42L, meta.seed());
        assertEquals(expected.parameters(0).toInfotext(), meta.parameters());
        assertEquals(42L, (Long) r.getMetadata().get("seed"));
        assertEquals("tiny-sdxl-base", r.getMetadata().get("model"));
    }

    @Test
    void portableOptionsAreHonoured() throws IOException {
        ImageOptions portable = ImageOptionsBuilder.builder().n(2).width(48).height(64).responseFormat("b64_json")
                .model("tiny-sdxl-base").build();
        ImageResponse r = model.call(new ImagePrompt(PROMPT, portable));
        assertEquals(2, r.getResults().size());
        GenerationResult expected = base.generate(javaApi(42L).size(64, 48).imagesPerPrompt(2).build());
        for (int i = 0; i < 2; i++) {
            byte[] png = png(r.getResults().get(i));
            BufferedImage img = decode(png);
            assertEquals(48, img.getWidth());
            assertEquals(64, img.getHeight());
            assertArrayEquals(expected.pngBytes(i), png, "image " + i);
        }
        assertFalse(java.util.Arrays.equals(png(r.getResults().get(0)), png(r.getResults().get(1))), "2 different images");
    }

    @Test
    void sdxl4jOptionsAreHonoured() {
        Sdxl4jImageOptions o = Sdxl4jImageOptions.builder().seed(9L).steps(2).guidanceScale(7.5).negativePrompt("dark")
                .scheduler("dpmpp_2m_karras").build();
        ImageResponse r = model.call(new ImagePrompt(PROMPT, o));
        GenerationResult expected = base.generate(javaApi(9L).steps(2).guidanceScale(7.5).negativePrompt("dark")
                .scheduler(SchedulerKind.DPMPP_2M_KARRAS).build());
        assertArrayEquals(expected.pngBytes(0), png(r.getResult()));
        assertTrue(expected.parameters(0).toInfotext().contains("Sampler: DPM++ 2M Karras"));
    }

    @Test
    void messagesOfNegativeWeightAreTheNegativePrompt() {
        ImagePrompt p = new ImagePrompt(List.of(new ImageMessage("a red bicycle"), new ImageMessage("leaning on a wall", 1f),
                new ImageMessage("dark", -1f)));
        ImageResponse r = model.call(p);
        GenerationResult expected = base.generate(javaApi(42L).prompt("a red bicycle, leaning on a wall")
                .negativePrompt("blurry, dark").build());
        assertArrayEquals(expected.pngBytes(0), png(r.getResult()));
    }

    @Test
    void withoutASeedEachCallDrawsOneAndReportsIt() {
        try (Sdxl4jImageModel random = new Sdxl4jImageModel(base, defaults().seed(null).build())) {
            ImageResponse a = random.call(new ImagePrompt(PROMPT));
            ImageResponse b = random.call(new ImagePrompt(PROMPT));
            long seedA = r(a).seed();
            long seedB = r(b).seed();
            assertNotEquals(seedA, seedB);
            assertArrayEquals(base.generate(javaApi(seedA).build()).pngBytes(0), png(a.getResult()));
            assertArrayEquals(base.generate(javaApi(seedB).build()).pngBytes(0), png(b.getResult()));
        }
        assertEquals(1, base.generate(javaApi(1L).build()).count(), "closing a model on a shared pipeline leaves it open");
    }

    private static Sdxl4jGenerationMetadata r(ImageResponse response) {
        return (Sdxl4jGenerationMetadata) response.getResult().getMetadata();
    }

    @Test
    void badOptionsGiveClearErrors() {
        unsupported(() -> model.call(new ImagePrompt(PROMPT, ImageOptionsBuilder.builder().responseFormat("url").build())),
                "responseFormat \"url\" is not served");
        rejects(opts -> opts.responseFormat("png"), "responseFormat \"png\" is not known");
        rejects(opts -> opts.model("dall-e-3"), "model \"dall-e-3\" is not loaded; this ImageModel serves \"tiny-sdxl-base\"");
        unsupported(() -> model.call(new ImagePrompt(PROMPT, ImageOptionsBuilder.builder().style("vivid").build())),
                "style \"vivid\" is not supported");
        rejects(opts -> opts.n(0), "n must be at least 1");
        rejects(opts -> opts.width(60), "width must be a positive multiple of 8");
        rejects(opts -> opts.height(-8), "height must be a positive multiple of 8");
        rejects(opts -> opts.steps(0), "steps must be at least 1");
        rejects(opts -> opts.guidanceScale(Double.NaN), "guidanceScale must be a finite number");
        rejects(opts -> opts.scheduler("no such sampler"), "unknown scheduler \"no such sampler\"");

        rejects(() -> model.call(null), "must not be null");
        rejects(() -> model.call(new ImagePrompt(List.of())), "has no text");
        rejects(() -> model.call(new ImagePrompt(List.of(new ImageMessage("dark", -1f)))), "has no text");
        Media picture = Media.builder().mimeType(MimeTypeUtils.IMAGE_PNG).data(new byte[] {1}).build();
        unsupported(() -> model.call(new ImagePrompt(List.of(new ImageMessage("x", null, List.of(picture), java.util.Map.of())))),
                "image inputs (message media) are not supported");
        rejects(() -> new Sdxl4jImageModel(base, defaults().steps(-1).build()), "steps must be at least 1");
        rejects(() -> Sdxl4jImageModel.load(modelFolder, PipelineOptions.defaults(), defaults().width(12).build()),
                "width must be a positive multiple of 8");
    }

    private interface Customizer {
        Sdxl4jImageOptions.Builder apply(Sdxl4jImageOptions.Builder b);
    }

    private static void rejects(Customizer options, String part) {
        rejects(() -> model.call(new ImagePrompt(PROMPT, options.apply(Sdxl4jImageOptions.builder()).build())), part);
    }

    static void rejects(Executable call, String part) {
        fails(ErrorCode.INVALID_ARGUMENT, call, part);
    }

    private static void unsupported(Executable call, String part) {
        fails(ErrorCode.UNSUPPORTED, call, part);
    }

    private static void fails(ErrorCode code, Executable call, String part) {
        SdxlException e = assertThrows(SdxlException.class, call);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part), "message \"" + e.getMessage() + "\" lacks \"" + part + "\"");
    }
}
