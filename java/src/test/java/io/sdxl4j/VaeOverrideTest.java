package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Another VAE than the model's ({@link PipelineOptions#withVae}, CLI --vae; diffusers' {@code vae=...}): given as
 * the model's own VAE folder or its weights file it decodes exactly as the model's VAE (the same latents, the same
 * pixels); the given path really is what is loaded (a weights file of another model is refused naming a missing
 * VAE key); a path that is neither a folder nor a .safetensors file is NOT_FOUND.
 */
class VaeOverrideTest {
    private static final Path BASE = ReferenceData.root().resolve("models/tiny-sdxl-base");

    private static GenerationResult run(PipelineOptions options) {
        try (StableDiffusionXL p = StableDiffusionXL.load(BASE, options)) {
            return p.generate(GenerationRequest.builder().prompt("a photo of a cat").steps(3).size(64, 64).seed(5L)
                    .watermark(false).build());
        }
    }

    @Test
    void theModelsOwnVaeGivenAsFolderOrFileDecodesTheSame() {
        GenerationResult own = run(PipelineOptions.defaults());
        GenerationResult folder = run(PipelineOptions.defaults().withVae(BASE.resolve("vae")));
        GenerationResult file = run(PipelineOptions.defaults().withVae(BASE.resolve("vae/diffusion_pytorch_model.safetensors")));
        assertArrayEquals(own.latents(), folder.latents());
        assertArrayEquals(own.pixels(), folder.pixels(), "VAE folder override");
        assertArrayEquals(own.pixels(), file.pixels(), "VAE file override");
    }

    @Test
    void theGivenFileIsWhatLoads() {
        // The UNet's weights are a .safetensors file too, but not a VAE: refused by key, so the override was read.
        Path notAVae = BASE.resolve("unet/diffusion_pytorch_model.safetensors");
        SdxlException e = assertThrows(SdxlException.class, () -> run(PipelineOptions.defaults().withVae(notAVae)));
        assertEquals(ErrorCode.BAD_MODEL_FILE, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains("decoder") || e.getMessage().contains("encoder"), e.getMessage());
        SdxlException missing = assertThrows(SdxlException.class,
                () -> run(PipelineOptions.defaults().withVae(BASE.resolve("no-such-vae"))));
        assertEquals(ErrorCode.NOT_FOUND, missing.code());
        assertFalse(missing.getMessage().isEmpty());
    }
}
