package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.models.VaeTiling;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The pipeline option {@code PipelineOptions.withVaeTiling(true)} (diffusers' {@code enable_vae_tiling()}) on the
 * tiny model, whose VAE has sample_size 64 (tiles of 64 px = 8 latent rows, a tile every 6 latent rows, 16 px
 * blended). An image that fits one tile is bit-identical with and without tiling (the one-pass decoder runs);
 * a larger one is decoded in tiles, which see only their own pixels (group norm statistics, the mid-block
 * attention), so it differs where the decoder's context differs: it must stay close (bounds below, measured
 * on this model with a margin) and finite. The exact tiling arithmetic is checked natively against an
 * independent implementation (native/tests/model_cases.cpp).
 */
class VaeTilingPipelineTest {
    private static StableDiffusionXL plain;
    private static StableDiffusionXL tiled;

    @BeforeAll
    static void load() {
        Path folder = ReferenceData.root().resolve("models/tiny-sdxl-base");
        plain = StableDiffusionXL.load(folder, PipelineOptions.defaults());
        tiled = StableDiffusionXL.load(folder, PipelineOptions.defaults().withVaeTiling(true));
    }

    @AfterAll
    static void close() {
        plain.close();
        tiled.close();
    }

    private static float[] image(StableDiffusionXL pipe, int height, int width) {
        GenerationRequest r = GenerationRequest.builder().prompt("a photo of a cat").steps(2).size(width, height)
                .seed(3L).watermark(false).build();
        return pipe.generate(r).pixels();
    }

    @Test
    void fitsOneTileIsExact() {
        assertArrayEquals(image(plain, 64, 64), image(tiled, 64, 64));
    }

    @Test
    void largerImagesAreTiledAndClose() {
        float[] a = image(plain, 96, 128);
        float[] b = image(tiled, 96, 128);
        assertEquals(a.length, b.length);
        double sum = 0, max = 0;
        int changed = 0;
        for (int i = 0; i < a.length; i++) {
            assertTrue(Float.isFinite(b[i]), "tiled pixel " + i + " is " + b[i]);
            double d = Math.abs(a[i] - b[i]);
            sum += d;
            max = Math.max(max, d);
            changed += d > 0 ? 1 : 0;
        }
        double mean = sum / a.length;
        System.out.printf("VAE tiling 96x128: mean |diff| %.4g, max |diff| %.4g, %d of %d values differ%n", mean, max,
                changed, a.length);
        assertTrue(changed > 0, "tiling on a 96x128 image (12x16 latents, 8-row tiles) changed nothing");
        assertTrue(mean < MEAN_BOUND, "mean |diff| " + mean + " >= " + MEAN_BOUND);
        assertTrue(max < MAX_BOUND, "max |diff| " + max + " >= " + MAX_BOUND);
    }

    @Test
    void badTileSizesAreRejected() {
        SdxlException e = assertThrows(SdxlException.class, () -> new VaeTiling(VaeTiling.Mode.AUTO, -8, 0.25));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        e = assertThrows(SdxlException.class, () -> new VaeTiling(VaeTiling.Mode.AUTO, 64, 1.0));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        // 4 px is less than one latent element of the 8x VAE: refused natively, naming the sizes.
        try (StableDiffusionXL p = StableDiffusionXL.load(ReferenceData.root().resolve("models/tiny-sdxl-base"),
                PipelineOptions.defaults().withVaeTiling(VaeTiling.auto(4)))) {
            e = assertThrows(SdxlException.class, () -> image(p, 64, 64));
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            assertTrue(e.getMessage().contains("tile_sample_size 4"), e.getMessage());
        }
    }

    // Images in [0, 1]. Measured (CPU, F32): mean |diff| 0.0327, max |diff| 0.362, 98 % of values changed (the
    // tiny VAE's 8-row tiles cover 2/3 of the 12-row latents, so every output pixel's context differs); bounds
    // about 2x that. A real SDXL image at 1024-px tiles changes far less (most pixels see the same tile).
    private static final double MEAN_BOUND = 0.07;
    private static final double MAX_BOUND = 0.75;
}
