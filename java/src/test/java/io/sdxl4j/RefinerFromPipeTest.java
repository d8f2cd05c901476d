package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link Refiner#fromPipe}: image-to-image over a loaded base's models (diffusers' {@code from_pipe}). It must give
 * exactly what an image-to-image pipeline loaded separately from the same folder gives (that path is checked
 * against diffusers by the pipeline reference cases), while holding the base's own model objects, and it must
 * neither close them nor run after the base is closed.
 */
class RefinerFromPipeTest {
    private static final Path BASE = ReferenceData.root().resolve("models/tiny-sdxl-base");

    @Test
    void sameImagesAsASeparateLoadWithTheBasesModels() {
        PipelineOptions options = PipelineOptions.defaults().withWatermark(false);
        StableDiffusionXL base = StableDiffusionXL.load(BASE, options);
        try (Refiner separate = Refiner.load(BASE, options)) {
            GenerationResult start = base.generate(GenerationRequest.builder().prompt("a lighthouse").size(64, 64)
                    .steps(3).seed(5).build());
            GenerationRequest img2img = GenerationRequest.builder().prompt("a lighthouse at night").size(64, 64)
                    .steps(4).strength(0.6).seed(9).image(ImageInput.of(start.image(0))).build();
            float[] expected = separate.generate(img2img).pixels();
            Refiner view = Refiner.fromPipe(base);
            assertSame(base.engine().unet, view.engine().unet, "the base's UNet, not a copy");
            assertSame(base.engine().vae, view.engine().vae);
            assertSame(base.engine().encoders, view.engine().encoders);
            assertArrayEquals(expected, view.generate(img2img).pixels(), "as a separately loaded img2img pipeline");
            // One LoRA set for both: loaded on the base, it applies to the view as to a separate pipeline given it.
            Path lora = ReferenceData.root().resolve("cases/lora/kohya_sgm_fp16.lora.safetensors");
            String name = base.loadLora(lora, 0.8, LoraMode.UNFUSED);
            separate.loadLora(lora, 0.8, LoraMode.UNFUSED);
            float[] withLora = separate.generate(img2img).pixels();
            assertFalse(Arrays.equals(expected, withLora), "the LoRA changes the image");
            assertArrayEquals(withLora, view.generate(img2img).pixels(), "the base's LoRA applies to the view");
            view.close();
            assertEquals(List.of(name), List.copyOf(base.loras().keySet()), "closing the view left the base's LoRA");
            base.unloadLoras();
            // Closing the view closed nothing of the base's.
            assertArrayEquals(start.pixels(), base.generate(GenerationRequest.builder().prompt("a lighthouse")
                    .size(64, 64).steps(3).seed(5).build()).pixels());
            Refiner another = Refiner.fromPipe(base);
            base.close();
            SdxlException e = assertThrows(SdxlException.class, () -> another.generate(img2img));
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            another.close();
            assertThrows(SdxlException.class, () -> Refiner.fromPipe(base));
        } finally {
            base.close();
        }
    }
}
