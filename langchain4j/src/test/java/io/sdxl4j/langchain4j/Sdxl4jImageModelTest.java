package io.sdxl4j.langchain4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.langchain4j.data.image.Image;
import dev.langchain4j.model.image.ImageModel;
import dev.langchain4j.model.output.Response;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.ImageInput;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.Refiner;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import io.sdxl4j.images.Images;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * The adapter against LangChain4j's real {@link ImageModel} interface with the bundled tiny SDXL: every image is a
 * PNG of the asked size whose bytes equal the Java API's {@link GenerationResult#pngBytes} for the same seed and
 * parameters (text to image on the base, image to image on the img2img pipeline); bad values are refused with
 * INVALID_ARGUMENT. One base pipeline for the class; small images and few steps.
 */
class Sdxl4jImageModelTest {
    private static final String PROMPT = "a red bicycle leaning on a wall";
    private static Path modelFolder;
    private static StableDiffusionXL base;
    private static Refiner img2img;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        modelFolder = Path.of(System.getProperty("sdxl4j.reference", "../java/src/test/resources/reference"))
                .resolve("models/tiny-sdxl-base");
        base = StableDiffusionXL.load(modelFolder);
    }

    @AfterAll
    static void close() {
        if (img2img != null) {
            img2img.close();
        }
        base.close();
    }

    /** The adapter's settings for most tests: 3 Euler steps of a 64-wide, 48-high image (not square: the order counts). */
    private static Sdxl4jImageModel.Builder small() {
        return Sdxl4jImageModel.builder().pipeline(base).steps(3).size(64, 48).guidanceScale(4.0)
                .negativePrompt("blurry").scheduler("Euler a").seed(42L);
    }

    /** The same call through the Java API. */
    private static GenerationRequest.Builder javaApi(long seed) {
        return GenerationRequest.builder().prompt(PROMPT).steps(3).size(48, 64).guidanceScale(4.0).negativePrompt("blurry")
                .scheduler(SchedulerKind.EULER_A).seed(seed);
    }

    private static byte[] png(Image image) {
        assertEquals("image/png", image.mimeType());
        assertNull(image.url());
        return Base64.getDecoder().decode(image.base64Data());
    }

    private static BufferedImage decode(byte[] png) throws IOException {
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(png));
        assertTrue(img != null, "not a decodable image");
        return img;
    }

    @Test
    void generateGivesTheJavaApisPngForTheSameSeed() throws IOException {
        try (Sdxl4jImageModel model = small().build()) {
            ImageModel asInterface = model;
            Response<Image> r = asInterface.generate(PROMPT);
            byte[] png = png(r.content());
            BufferedImage img = decode(png);
            assertEquals(64, img.getWidth());
            assertEquals(48, img.getHeight());
            assertNull(r.content().revisedPrompt());

            GenerationResult expected = base.generate(javaApi(42L).build());
            assertArrayEquals(expected.pngBytes(0), png, "the same PNG bytes (pixels and infotext) as the Java API");
            assertEquals(42L, r.metadata().get("seed"));
            assertEquals(List.of(expected.parameters(0).toInfotext()), r.metadata().get("parameters"));
            assertEquals("parameters", pngTextKey(png));
        }
    }

    @Test
    void generateNGivesNDifferentImagesEqualToTheJavaApisBatch() throws IOException {
        try (Sdxl4jImageModel model = small().build()) {
            Response<List<Image>> r = model.generate(PROMPT, 3);
            assertEquals(3, r.content().size());
            GenerationResult expected = base.generate(javaApi(42L).imagesPerPrompt(3).build());
            for (int i = 0; i < 3; i++) {
                byte[] png = png(r.content().get(i));
                BufferedImage img = decode(png);
                assertEquals(64, img.getWidth());
                assertEquals(48, img.getHeight());
                assertArrayEquals(expected.pngBytes(i), png, "image " + i);
            }
            assertFalse(java.util.Arrays.equals(png(r.content().get(0)), png(r.content().get(1))), "n different images");
        }
    }

    @Test
    void withoutASeedEachCallDrawsOneAndReportsIt() {
        try (Sdxl4jImageModel model = small().seed(null).build()) {
            Response<Image> a = model.generate(PROMPT);
            Response<Image> b = model.generate(PROMPT);
            long seedA = (Long) a.metadata().get("seed");
            long seedB = (Long) b.metadata().get("seed");
            assertNotEquals(seedA, seedB);
            // the reported seed reproduces the image with the Java API
            assertArrayEquals(base.generate(javaApi(seedA).build()).pngBytes(0), png(a.content()));
            assertArrayEquals(base.generate(javaApi(seedB).build()).pngBytes(0), png(b.content()));
        }
    }

    @Test
    void editIsTheJavaApisImageToImage() throws IOException {
        byte[] input = base.generate(javaApi(7L).size(64, 64).build()).pngBytes(0);
        try (Sdxl4jImageModel model = small().strength(0.7).seed(5L).build()) {
            Response<Image> r = model.edit(Image.builder().base64Data(Base64.getEncoder().encodeToString(input)).build(),
                    "a blue bicycle");
            byte[] png = png(r.content());
            BufferedImage img = decode(png);
            assertEquals(64, img.getWidth(), "img2img keeps the picture's size, not the text-to-image size");
            assertEquals(64, img.getHeight());

            int[] hw = new int[2];
            float[] pixels = Images.preprocess(decode(input), hw);
            GenerationResult expected = javaImg2Img().generate(GenerationRequest.builder().prompt("a blue bicycle")
                    .negativePrompt("blurry").steps(3).guidanceScale(4.0).scheduler(SchedulerKind.EULER_A).seed(5L)
                    .strength(0.7).image(ImageInput.pixels(pixels, 1, hw[0], hw[1])).build());
            assertArrayEquals(expected.pngBytes(0), png);
            assertTrue(expected.parameters(0).toInfotext().contains("Denoising strength: 0.7"));
            assertFalse(java.util.Arrays.equals(input, png), "the picture changed");

            // the same picture as a data: URL and as a file: URL
            URI data = URI.create("data:image/png;base64," + Base64.getEncoder().encodeToString(input));
            assertArrayEquals(png, png(model.edit(Image.builder().url(data).build(), "a blue bicycle").content()));
            Path file = Files.write(dir.resolve("in.png"), input);
            assertArrayEquals(png, png(model.edit(Image.builder().url(file.toUri()).build(), "a blue bicycle").content()));
        }
    }

    @Test
    void editRefusesWhatItCannotRead() {
        try (Sdxl4jImageModel model = small().build()) {
            SdxlException remote = assertThrows(SdxlException.class,
                    () -> model.edit(Image.builder().url(URI.create("https://example.com/cat.png")).build(), "x"));
            assertEquals(ErrorCode.UNSUPPORTED, remote.code());
            assertTrue(remote.getMessage().contains("downloads nothing"), remote.getMessage());
            rejects(() -> model.edit(Image.builder().base64Data("!!not base64!!").build(), "x"), "not valid base64");
            rejects(() -> model.edit(Image.builder().base64Data(Base64.getEncoder().encodeToString(new byte[] {1, 2, 3}))
                    .build(), "x"), "not an image format");
            rejects(() -> model.edit(Image.builder().build(), "x"), "neither base64 data nor a URL");
            rejects(() -> model.edit(null, "x"), "edit needs an image");
            Image some = Image.builder().base64Data("AAAA").build();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.edit(some, some, "x"));
            assertTrue(e.getMessage().contains("does not support inpainting"), e.getMessage());
        }
    }

    @Test
    void badSettingsAndArgumentsGiveClearErrors() {
        rejects(() -> small().steps(0).build(), "steps must be at least 1");
        rejects(() -> small().size(60, 48).build(), "multiples of 8");
        rejects(() -> small().guidanceScale(Double.NaN).build(), "guidanceScale must be a finite number");
        rejects(() -> small().strength(0).build(), "strength must be in (0, 1]");
        rejects(() -> small().scheduler("no such sampler").build(), "unknown scheduler");
        rejects(() -> small().modelPath(modelFolder).build(), "exactly one of modelPath and pipeline");
        rejects(() -> Sdxl4jImageModel.builder().build(), "exactly one of modelPath and pipeline");
        SdxlException missing = assertThrows(SdxlException.class,
                () -> Sdxl4jImageModel.builder().modelPath(modelFolder.resolve("nope")).build());
        assertEquals(ErrorCode.NOT_FOUND, missing.code(), missing.getMessage());
        try (Sdxl4jImageModel model = small().build()) {
            rejects(() -> model.generate(PROMPT, 0), "images per prompt");
            rejects(() -> model.generate(null), "the prompt is null");
        }
    }

    @Test
    void closeReleasesWhatTheModelLoadedAndNothingElse() {
        Sdxl4jImageModel owning = Sdxl4jImageModel.builder().modelPath(modelFolder).steps(2).size(64, 64).seed(1L).build();
        assertEquals(1, owning.generate(PROMPT, 1).content().size());
        owning.close();
        owning.close();  // idempotent
        rejects(() -> owning.generate(PROMPT), "closed");

        Sdxl4jImageModel sharing = small().build();
        sharing.close();
        assertEquals(1, base.generate(javaApi(1L).build()).count(), "a pipeline handed in stays open");
    }

    private static synchronized Refiner javaImg2Img() {
        if (img2img == null) {
            img2img = Refiner.load(modelFolder, PipelineOptions.defaults());
        }
        return img2img;
    }

    private static void rejects(Executable call, String part) {
        SdxlException e = assertThrows(SdxlException.class, call);
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part), "message \"" + e.getMessage() + "\" lacks \"" + part + "\"");
    }

    /** The keyword of the first tEXt chunk, read from the PNG bytes. */
    private static String pngTextKey(byte[] png) {
        for (int i = 8; i + 8 < png.length; ) {
            int length = ((png[i] & 0xff) << 24) | ((png[i + 1] & 0xff) << 16) | ((png[i + 2] & 0xff) << 8) | (png[i + 3] & 0xff);
            String type = new String(png, i + 4, 4, java.nio.charset.StandardCharsets.ISO_8859_1);
            if (type.equals("tEXt")) {
                int end = i + 8;
                while (png[end] != 0) {
                    end++;
                }
                return new String(png, i + 8, end - i - 8, java.nio.charset.StandardCharsets.ISO_8859_1);
            }
            i += 12 + length;
        }
        return null;
    }
}
