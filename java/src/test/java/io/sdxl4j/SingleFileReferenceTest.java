package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.io.SafetensorsFile;
import io.sdxl4j.models.ClipTextConfig;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.ClipTextOutput;
import io.sdxl4j.models.SingleFileCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every case of cases/single_file through the public API: diffusers' {@code from_single_file} of the SGM-layout
 * checkpoints made by diffusers' own conversion script.
 *
 * <ul>
 *   <li>{@code *_components}: the file is the one the reference read (tensor count, the fused OpenCLIP tensors it
 *       stored); the text encoders built from it give the folder's outputs exactly for fp32 (the group's tolerance:
 *       bit-identical weights; every tensor's bits are checked natively by {@code test_single_file.cpp}) and within
 *       1e-2 for fp16 (weights rounded to fp16, up to 4.9e-4 apart).</li>
 *   <li>pipeline cases: {@link StableDiffusionXL#fromSingleFile} with the case's config folder, compared as
 *       {@link PipelineReferenceTest} does (timesteps exact, latents, every step and the image within 1e-3,
 *       step-0 conditioning within 1e-4).</li>
 * </ul>
 */
class SingleFileReferenceTest {
    private static final Pattern CONFIG = Pattern.compile("config='([^']+)'");

    @TestFactory
    Stream<DynamicTest> everyCase() {
        List<JsonNode> cases = ReferenceData.cases("single_file");
        assertEquals(4, cases.size(), "single_file cases");
        return cases.stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> {
            if (c.has("component_max_abs_diff")) {
                components(c);
            } else {
                pipeline(c);
            }
        }));
    }

    private static Path root() {
        return ReferenceData.root();
    }

    private static void components(JsonNode c) {
        JsonNode p = c.get("params");
        Path ckpt = root().resolve(p.get("checkpoint").asText());
        Path folder = root().resolve(p.get("config").asText());
        boolean fp32 = "float32".equals(c.get("checkpoint_dtype").asText());
        Path caseFile = ReferenceData.caseFile("single_file", c);
        try (SafetensorsFile ref = SafetensorsFile.open(caseFile); SafetensorsFile file = SafetensorsFile.open(ckpt);
             SingleFileCheckpoint sf = SingleFileCheckpoint.open(ckpt)) {
            assertEquals(c.get("checkpoint_tensor_count").asInt(), file.names().size(), "tensor count");
            assertEquals(fp32 ? "F32" : "F16", sf.storageDtype());
            assertTrue(!sf.isRefiner());
            String g = "conditioner.embedders.1.model.";
            assertEquals(0.0, ReferenceData.maxAbsDiff(PipelineReferenceTest.floats(ref, "ckpt_te2_resblock0_in_proj_weight"),
                    PipelineReferenceTest.floats(file, g + "transformer.resblocks.0.attn.in_proj_weight")));
            assertEquals(0.0, ReferenceData.maxAbsDiff(PipelineReferenceTest.floats(ref, "ckpt_te2_text_projection"),
                    PipelineReferenceTest.floats(file, g + "text_projection")));
            for (String te : new String[] {"text_encoder", "text_encoder_2"}) {
                ClipTextConfig cfg = ClipTextConfig.read(folder.resolve(te).resolve("config.json"));
                long[] ids = new long[77];
                ids[0] = 49406;
                for (int i = 1; i < 77; i++) {
                    ids[i] = i < 6 ? 320 + 97 * i : 49407;
                }
                try (ClipTextModel a = ClipTextModel.load(sf, te, cfg, Device.CPU, DType.F32);
                     ClipTextModel b = ClipTextModel.load(folder.resolve(te), null);
                     Tensor in = Tensor.ofLongs(ids, 1, 77);
                     ClipTextOutput oa = a.forward(in); ClipTextOutput ob = b.forward(in)) {
                    double d = ReferenceData.maxAbsDiff(oa.lastHiddenState().toFloatArray(), ob.lastHiddenState().toFloatArray());
                    double dp = ReferenceData.maxAbsDiff(oa.pooled().toFloatArray(), ob.pooled().toFloatArray());
                    System.out.printf("%s %s: last_hidden_state %.3g, pooled %.3g vs the folder%n", c.get("name").asText(), te, d, dp);
                    if (fp32) {
                        assertTrue(d == 0.0 && dp == 0.0, te + ": fp32 single file differs from the folder: " + d + ", " + dp);
                    } else {
                        assertTrue(d <= 1e-2 && dp <= 1e-2, te + ": fp16 single file: " + d + ", " + dp);
                    }
                }
            }
        }
    }

    private static void pipeline(JsonNode c) {
        JsonNode p = c.get("params");
        Path ckpt = root().resolve(p.get("checkpoint").asText());
        Matcher m = CONFIG.matcher(p.get("load").asText());
        assertTrue(m.find(), "config folder in " + p.get("load"));
        Path file = ReferenceData.caseFile("single_file", c);
        try (SafetensorsFile f = SafetensorsFile.open(file);
             StableDiffusionXL pipe = StableDiffusionXL.fromSingleFile(ckpt, root().resolve(m.group(1)),
                     PipelineOptions.defaults().withWatermark(false).withDevice(PipelineReferenceTest.device()))) {
            GenerationRequest.Builder b = PipelineReferenceTest.request(p.get("call_kwargs"), f)
                    .scheduler(SchedulerKind.fromName(p.get("scheduler_class").asText()));
            PipelineReferenceTest.overrides(p.get("scheduler_overrides"), b);
            PipelineReferenceTest.Recorder rec = new PipelineReferenceTest.Recorder();
            GenerationResult r;
            try (Generator g = Generator.seeded(p.get("seed").asLong())) {
                r = pipe.generate(b.build(), g, rec);
            }
            PipelineReferenceTest.compare(c, f, file, "", r, rec);
            assertEquals(ckpt, pipe.singleFile());
        }
    }

    @Test
    void modelHashIsA1111ShortHash() throws Exception {
        JsonNode files = new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(root().resolve("cases/single_file/index.json").toFile()).get("files");
        try (StableDiffusionXL pipe = StableDiffusionXL.fromSingleFile(root().resolve(files.get("fp16").get("path").asText()),
                root().resolve("models/tiny-sdxl-base"), PipelineOptions.defaults())) {
            // A1111's "Model hash": the first 10 hex digits of the file's SHA-256 (recorded in the group index).
            assertEquals(files.get("fp16").get("sha256").asText().substring(0, 10), pipe.modelHash());
        }
    }

    @Test
    void loadDetectsSingleFilesAndUsesTheBundledConfigs() {
        // No config folder: the real SDXL 1.0 configs shipped in the jar, whose UNet does not fit the tiny weights.
        SdxlException e = assertThrows(SdxlException.class, () -> StableDiffusionXL.load(
                root().resolve("models/single-file/tiny-sdxl-base.safetensors"), PipelineOptions.defaults()).close());
        assertEquals(ErrorCode.BAD_MODEL_FILE, e.code());
        assertTrue(e.getMessage().contains("shape"), e.getMessage());
    }

    @Test
    void refusesPicklesAndOtherModels(@TempDir Path dir) throws Exception {
        Path ckpt = dir.resolve("model.ckpt");
        Files.write(ckpt, new byte[] {(byte) 0x80, 2, '}', 'q', 0, '.'});
        SdxlException e = assertThrows(SdxlException.class,
                () -> StableDiffusionXL.fromSingleFile(ckpt, null, PipelineOptions.defaults()));
        assertEquals(ErrorCode.BAD_MODEL_FILE, e.code());
        assertTrue(e.getMessage().contains("Convert it to .safetensors"), e.getMessage());
        // A diffusers component file is not a checkpoint.
        Path unetFile = root().resolve("models/tiny-sdxl-base/unet/diffusion_pytorch_model.safetensors");
        e = assertThrows(SdxlException.class, () -> StableDiffusionXL.fromSingleFile(unetFile, null, PipelineOptions.defaults()));
        assertEquals(ErrorCode.BAD_MODEL_FILE, e.code());
        assertTrue(e.getMessage().contains("diffusers"), e.getMessage());
    }
}
