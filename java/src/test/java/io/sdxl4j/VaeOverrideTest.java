package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.models.AutoencoderKL;
import io.sdxl4j.models.SingleFileCheckpoint;
import io.sdxl4j.models.VaeConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Another VAE than the model's ({@link PipelineOptions#withVae}, CLI --vae; diffusers' {@code vae=...}): given as
 * the model's own VAE folder or its weights file it decodes exactly as the model's VAE (the same latents, the same
 * pixels); the given path really is what is loaded (a weights file of another model is refused as no VAE); a path
 * that is neither a folder nor a .safetensors file is NOT_FOUND.
 *
 * <p>LDM / A1111-layout VAE files (stabilityai's sdxl_vae.safetensors, the fp16-fix VAE's: {@code encoder.down.0
 * .block.0...}, attention as 1x1 convs), made here from the reference single-file checkpoint's first_stage_model.*
 * tensors: bare (with the model_ema / loss entries training leaves), or still under first_stage_model.; fp32 decodes
 * bit-identically to the folder's VAE, fp16 to the fp16 checkpoint's VAE; a missing or mis-shaped key is
 * BAD_MODEL_FILE naming it.
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

    /** The checkpoint's first_stage_model.* tensors under `prefix` instead (an LDM VAE download). */
    private static Map<String, RawSafetensors.Entry> ldmVae(String checkpoint, String prefix) throws IOException {
        Map<String, RawSafetensors.Entry> out = new LinkedHashMap<>();
        RawSafetensors.read(ReferenceData.root().resolve("models/single-file").resolve(checkpoint)).forEach((k, v) -> {
            if (k.startsWith("first_stage_model.")) {
                out.put(prefix + k.substring("first_stage_model.".length()), v);
            }
        });
        return out;
    }

    private static float[] decode(AutoencoderKL vae, float[] z) {
        try (Tensor zt = Tensor.of(z, 1, 4, 8, 8); Tensor img = vae.decode(zt)) {
            return img.toFloatArray();
        }
    }

    @Test
    void ldmLayoutVaeFilesDecodeAsTheSameWeights(@TempDir Path dir) throws IOException {
        VaeConfig config = VaeConfig.read(BASE.resolve("vae/config.json"));
        float[] z = new float[4 * 8 * 8];
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) Math.sin(0.37 * i) * 1.5f;
        }
        float[] folder;
        try (AutoencoderKL vae = AutoencoderKL.load(BASE.resolve("vae"), null)) {
            folder = decode(vae, z);
        }
        Map<String, RawSafetensors.Entry> bare = ldmVae("tiny-sdxl-base.safetensors", "");
        bare.put("model_ema.decay", RawSafetensors.Entry.ofFloats(new float[] {0.9999f}));
        bare.put("loss.logvar", RawSafetensors.Entry.ofFloats(new float[] {0f}));
        Path bareFile = dir.resolve("sdxl_vae.safetensors");
        RawSafetensors.write(bareFile, bare);
        Path prefixedFile = dir.resolve("prefixed_vae.safetensors");
        RawSafetensors.write(prefixedFile, ldmVae("tiny-sdxl-base.safetensors", "first_stage_model."));
        for (Path f : List.of(bareFile, prefixedFile)) {
            try (AutoencoderKL vae = AutoencoderKL.load(config, List.of(f), Device.CPU, DType.F32)) {
                assertArrayEquals(folder, decode(vae, z), f.getFileName() + " vs the folder's VAE");
            }
        }
        // fp16: the weights of the fp16 checkpoint, so the same decode as that checkpoint's own VAE.
        Path half = dir.resolve("sdxl_vae.fp16.safetensors");
        RawSafetensors.write(half, ldmVae("tiny-sdxl-base.fp16.safetensors", ""));
        try (AutoencoderKL vae = AutoencoderKL.load(config, List.of(half), Device.CPU, DType.F32);
             SingleFileCheckpoint ck = SingleFileCheckpoint.open(
                     ReferenceData.root().resolve("models/single-file/tiny-sdxl-base.fp16.safetensors"));
             AutoencoderKL own = AutoencoderKL.load(ck, config, Device.CPU, DType.F32)) {
            float[] got = decode(vae, z);
            assertArrayEquals(decode(own, z), got, "fp16 LDM VAE file vs the fp16 checkpoint's VAE");
            assertTrue(ReferenceData.maxAbsDiff(folder, got) < 1e-2, "fp16 weights decode close to the fp32 ones");
        }
        // And as the pipeline's VAE (--vae FILE): the model's own pixels.
        GenerationResult own = run(PipelineOptions.defaults());
        GenerationResult ldm = run(PipelineOptions.defaults().withVae(bareFile));
        assertArrayEquals(own.pixels(), ldm.pixels(), "LDM VAE file override");
    }

    @Test
    void brokenLdmVaeFilesAreRefusedNamingTheKey(@TempDir Path dir) throws IOException {
        VaeConfig config = VaeConfig.read(BASE.resolve("vae/config.json"));
        Map<String, RawSafetensors.Entry> missing = ldmVae("tiny-sdxl-base.safetensors", "");
        missing.remove("decoder.up.3.block.1.conv2.weight");
        Map<String, RawSafetensors.Entry> shaped = ldmVae("tiny-sdxl-base.safetensors", "");
        RawSafetensors.Entry q = shaped.get("encoder.mid.attn_1.q.weight");
        shaped.put("encoder.mid.attn_1.q.weight", new RawSafetensors.Entry(q.dtype(), new long[] {16, 64, 1, 1}, q.data()));
        Map<String, Map<String, RawSafetensors.Entry>> cases = Map.of(
                "decoder.up.3.block.1.conv2.weight", missing, "encoder.mid.attn_1.q.weight", shaped);
        for (Map.Entry<String, Map<String, RawSafetensors.Entry>> c : cases.entrySet()) {
            Path f = dir.resolve("broken.safetensors");
            RawSafetensors.write(f, c.getValue());
            SdxlException e = assertThrows(SdxlException.class,
                    () -> AutoencoderKL.load(config, List.of(f), Device.CPU, DType.F32).close());
            assertEquals(ErrorCode.BAD_MODEL_FILE, e.code(), e.getMessage());
            assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains(c.getKey()), e.getMessage());
        }
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
