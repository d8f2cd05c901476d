package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.images.GenerationParameters;
import io.sdxl4j.io.SafetensorsFile;
import io.sdxl4j.io.SafetensorsWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Textual inversion beyond the reference cases: bad embedding files and tokens (each a SdxlException with the code
 * and a message naming the problem), unloading, the embeddings directory with ComfyUI's embedding:NAME and A1111's
 * bare NAME (checked against the reference encode_prompt outputs, since both must give the reference's ids), and
 * the A1111 "TI hashes" infotext entry.
 */
class TextualInversionTest {
    private static final Path EMBEDDING = ReferenceData.root().resolve("cases/textual_inversion/ti_emb_a.ti.safetensors");
    private static StableDiffusionXL pipe;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void load() {
        pipe = StableDiffusionXL.load(ReferenceData.root().resolve("models/tiny-sdxl-base"),
                PipelineOptions.defaults().withWatermark(false));
    }

    @AfterAll
    static void close() {
        pipe.close();
    }

    private static Path write(String name, Map<String, Tensor> tensors) {
        Path p = tmp.resolve(name);
        SafetensorsWriter.write(p, tensors, Map.of());
        return p;
    }

    private static Tensor rand(long... shape) {
        int n = 1;
        for (long s : shape) {
            n *= (int) s;
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) Math.sin(i * 0.7) * 0.05f;
        }
        return Tensor.of(v, shape);
    }

    private static void assertFails(ErrorCode code, String inMessage, Executable call) {
        SdxlException e = assertThrows(SdxlException.class, call);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(inMessage), "message \"" + e.getMessage() + "\" should mention " + inMessage);
    }

    @Test
    void badFiles() {
        assertFails(ErrorCode.BAD_MODEL_FILE, "clip_g", () -> pipe.loadTextualInversion(
                write("no_g.safetensors", Map.of("clip_l", rand(2, 32))), "<a>"));
        assertFails(ErrorCode.BAD_MODEL_FILE, "SD 1.x/2.x", () -> pipe.loadTextualInversion(
                write("sd15.safetensors", Map.of("emb_params", rand(2, 768))), "<a>"));
        assertFails(ErrorCode.BAD_MODEL_FILE, "[vectors, width]", () -> pipe.loadTextualInversion(
                write("rank1.safetensors", Map.of("clip_l", rand(32), "clip_g", rand(48))), "<a>"));
        assertFails(ErrorCode.BAD_MODEL_FILE, "vectors", () -> pipe.loadTextualInversion(
                write("n_mismatch.safetensors", Map.of("clip_l", rand(2, 32), "clip_g", rand(3, 48))), "<a>"));
        float[] nan = rand(2, 48).toFloatArray();
        nan[50] = Float.NaN;
        assertFails(ErrorCode.BAD_MODEL_FILE, "clip_g[1, 2] is NaN", () -> pipe.loadTextualInversion(
                write("nan.safetensors", Map.of("clip_l", rand(2, 32), "clip_g", Tensor.of(nan, 2, 48))), "<a>"));
        // the widths of real SDXL embeddings do not fit the tiny encoders (32 / 48)
        assertFails(ErrorCode.INVALID_ARGUMENT, "hidden size 32", () -> pipe.loadTextualInversion(
                write("real_width.safetensors", Map.of("clip_l", rand(1, 768), "clip_g", rand(1, 1280))), "<a>"));
        assertFails(ErrorCode.INVALID_ARGUMENT, "hidden size 48", () -> pipe.loadTextualInversion(
                write("g_width.safetensors", Map.of("clip_l", rand(1, 32), "clip_g", rand(1, 47))), "<a>"));
        assertFails(ErrorCode.NOT_FOUND, "does not exist", () -> pipe.loadTextualInversion(tmp.resolve("none.safetensors"), "<a>"));
        assertFails(ErrorCode.UNSUPPORTED, "pickle", () -> pipe.loadTextualInversion(tmp.resolve("x.pt"), "<a>"));
        assertTrue(pipe.textualInversions().isEmpty(), "nothing stays loaded after a failure");
    }

    @Test
    void tokensAlreadyTaken() {
        assertFails(ErrorCode.INVALID_ARGUMENT, "already", () -> pipe.loadTextualInversion(EMBEDDING, "cat</w>"));
        assertFails(ErrorCode.INVALID_ARGUMENT, "already", () -> pipe.loadTextualInversion(EMBEDDING, "<|endoftext|>"));
        pipe.loadTextualInversion(EMBEDDING, "<t1>");
        try {
            assertFails(ErrorCode.INVALID_ARGUMENT, "already", () -> pipe.loadTextualInversion(EMBEDDING, "<t1>"));
            assertEquals(1, pipe.textualInversions().size());
            // a second embedding gets the ids after the first's: <t2> = 49410
            pipe.loadTextualInversion(EMBEDDING, "<t2>");
            assertEquals(49410, pipe.engine().tokenizerWithEmbeddings(1).encode("<t2>")[0]);
            assertTrue(pipe.unloadTextualInversion("<t1>"));
            assertFalse(pipe.unloadTextualInversion("<t1>"));
            assertEquals(49408, pipe.engine().tokenizerWithEmbeddings(1).encode("<t2>")[0], "ids close up after unloading");
        } finally {
            pipe.unloadTextualInversions();
        }
        assertEquals(49408, pipe.engine().tokenizerWithEmbeddings(0).size());
    }

    /** The ti_emb_a reference case with the embedding named through the prompt syntaxes instead of loaded as <emb>. */
    @Test
    void namesFromTheEmbeddingsDirectory() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("embeddings"));
        Files.copy(EMBEDDING, dir.resolve("my-style.safetensors"));
        JsonNode c = ReferenceData.cases("textual_inversion").get(0);
        Path file = ReferenceData.caseFile("textual_inversion", c);
        String prompt = c.get("params").get("call_kwargs").get("prompt").asText();  // "a photo of <emb> on a table"
        assertTrue(prompt.contains("<emb>"));
        pipe.setEmbeddingsDirectory(dir);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            float[] want = PipelineReferenceTest.floats(f, "encode_prompt_embeds");
            float[] wantPooled = PipelineReferenceTest.floats(f, "encode_pooled_prompt_embeds");
            for (Object[] form : new Object[][] {
                {prompt.replace("<emb>", "embedding:my-style"), PromptSyntax.PLAIN},
                {prompt.replace("<emb>", "embedding:my-style.safetensors"), PromptSyntax.COMPEL},
                {prompt.replace("<emb>", "my-style"), PromptSyntax.A1111},
            }) {
                String p = (String) form[0];
                PromptSyntax syntax = (PromptSyntax) form[1];
                assertEquals("a photo of <my-style> <my-style>_1 on a table", pipe.engine().promptForTokenizers(p, syntax), p);
                GenerationRequest r = GenerationRequest.builder().prompt(p).syntax(syntax).guidanceScale(1.0).steps(1)
                        .size(64, 64).output(GenerationRequest.Output.LATENT).build();
                PipelineReferenceTest.Recorder rec = new PipelineReferenceTest.Recorder();
                try (Generator g = Generator.seeded(1)) {
                    pipe.generate(r, g, rec);
                }
                double d = ReferenceData.maxAbsDiff(rec.cond.embeds(), want);
                double dp = ReferenceData.maxAbsDiff(rec.cond.pooled(), wantPooled);
                assertTrue(d <= 1e-4 && dp <= 1e-4, syntax + " \"" + p + "\": prompt_embeds " + d + ", pooled " + dp);
                assertEquals(Map.of("my-style", sha256(EMBEDDING).substring(0, 12)), pipe.textualInversionHashes(r));
            }
            assertEquals(1, pipe.textualInversions().size(), "loaded once, on first use, as <my-style>");
            assertTrue(pipe.textualInversions().containsKey("<my-style>"));
            // in the plain syntax a bare name is text; an unknown embedding:NAME is refused
            assertEquals("a photo of my-style", pipe.engine().promptForTokenizers("a photo of my-style", PromptSyntax.PLAIN));
            assertFails(ErrorCode.NOT_FOUND, "embedding:other", () -> pipe.engine().promptForTokenizers(
                    "embedding:other", PromptSyntax.PLAIN));
        } finally {
            pipe.setEmbeddingsDirectory(null);
            pipe.unloadTextualInversions();
        }
    }

    @Test
    void a1111InfotextRecordsTiHashes() {
        // A1111 writes the entry as "name: shorthash, ..." and quotes it (it holds ':' and ',')
        GenerationParameters p = GenerationParameters.builder().prompt("a photo of my-style").steps(4).sampler("Euler").seed(1)
                .extra("TI hashes", "my-style: 0123456789ab, neg: ba9876543210").build();
        String text = p.toInfotext();
        assertTrue(text.contains("TI hashes: \"my-style: 0123456789ab, neg: ba9876543210\""), text);
        assertEquals("my-style: 0123456789ab, neg: ba9876543210", GenerationParameters.parse(text).get("TI hashes").orElseThrow());
        assertArrayEquals(new String[] {"/x/a.safetensors", "<tok>"}, io.sdxl4j.cli.GenerateAccess.spec("/x/a.safetensors:<tok>"));
        assertArrayEquals(new String[] {"/x/a.safetensors", null}, io.sdxl4j.cli.GenerateAccess.spec("/x/a.safetensors"));
    }

    private static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }
}
