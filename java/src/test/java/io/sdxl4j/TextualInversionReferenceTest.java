package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.io.SafetensorsFile;
import io.sdxl4j.text.ClipTokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case of cases/textual_inversion (diffusers 0.31 {@code load_textual_inversion} of an SDXL clip_l/clip_g
 * embedding into both encoders) through the public API: the added token ids and the converted prompt exactly; the
 * embedding rows equal the file exactly; {@code encode_prompt}'s prompt, negative and pooled embeddings (the pooled
 * one taken at the first {@code <emb>_1}, not at the end token) within 1e-4, the text_encoder group's tolerance; the
 * pipeline run as the pipelines group compares it (latents and image within 1e-3, step-0 conditioning 1e-4).
 *
 * <p>encode_prompt's outputs are read from the conditioning the UNet receives at step 0 (CFG batch [negative,
 * positive]), which is what diffusers' __call__ builds from encode_prompt.
 */
class TextualInversionReferenceTest {
    private static final String GROUP = "textual_inversion";
    private static final double TEXT_ATOL = 1e-4;

    @TestFactory
    Stream<DynamicTest> everyCase() {
        return ReferenceData.cases(GROUP).stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        String name = c.get("name").asText();
        JsonNode p = c.get("params");
        Path dir = ReferenceData.root().resolve("cases").resolve(GROUP);
        Path file = ReferenceData.caseFile(GROUP, c);
        String token = c.get("token").asText();
        try (StableDiffusionXL pipe = StableDiffusionXL.load(ReferenceData.root().resolve("models/tiny-sdxl-base"),
                PipelineOptions.defaults().withWatermark(false).withDevice(PipelineReferenceTest.device()));
             SafetensorsFile f = SafetensorsFile.open(file)) {
            TextualInversion ti = pipe.loadTextualInversion(dir.resolve(c.get("embedding_file").asText()), token);

            // the file's vectors, exactly (what load_textual_inversion put in the new rows)
            assertArrayEquals(PipelineReferenceTest.floats(f, "input_clip_l"), ti.vectors(TextualInversion.CLIP_L), name);
            assertArrayEquals(PipelineReferenceTest.floats(f, "input_clip_g"), ti.vectors(TextualInversion.CLIP_G), name);

            // tokens and ids, both tokenizers
            String prompt = p.get("call_kwargs").get("prompt").asText();
            SdxlEngine engine = pipe.engine();
            for (int e = 0; e < 2; e++) {
                ClipTokenizer tok = engine.tokenizerWithEmbeddings(e);
                String suffix = "_tok" + (e + 1);
                c.get("added_token_ids" + suffix).fields().forEachRemaining(t ->
                        assertEquals(t.getValue().asInt(), tok.encode(t.getKey())[0], name + ": id of " + t.getKey()));
                assertEquals(c.get("vocab_size_after").get(e).asInt(), tok.size(), name + ": len(tokenizer" + suffix + ")");
                String converted = engine.promptForTokenizers(prompt, PromptSyntax.PLAIN);
                assertEquals(c.get("converted_prompt" + suffix).asText(), converted, name + ": maybe_convert_prompt");
                long[] ids = tok.inputIds(converted);
                long[] want = Arrays.stream(ReferenceData.doubles(file, "ids" + suffix)).mapToLong(d -> (long) d).toArray();
                assertArrayEquals(want, ids, name + ": ids" + suffix);
            }
            List<String> tokens = new ArrayList<>();
            tokens.add("<|startoftext|>");
            tokens.addAll(engine.tokenizerWithEmbeddings(0).tokenize(engine.promptForTokenizers(prompt, PromptSyntax.PLAIN)));
            tokens.add("<|endoftext|>");
            List<String> wantTokens = new ArrayList<>();
            c.get("tokens_tok1").forEach(t -> wantTokens.add(t.asText()));
            assertEquals(wantTokens, tokens, name + ": tokens");

            // the pipeline run; its step-0 conditioning is encode_prompt's output
            GenerationRequest.Builder b = PipelineReferenceTest.request(p.get("call_kwargs"), f)
                    .scheduler(SchedulerKind.fromName(p.get("scheduler_class").asText()));
            PipelineReferenceTest.overrides(p.get("scheduler_overrides"), b);
            PipelineReferenceTest.Recorder rec = new PipelineReferenceTest.Recorder();
            GenerationResult result;
            try (Generator g = Generator.seeded(p.get("seed").asLong())) {
                result = pipe.generate(b.build(), g, rec);
            }
            SdxlEngine.Cond cond = rec.cond;
            assertEquals(2, cond.batch(), name + ": CFG batch");
            int half = cond.embeds().length / 2;
            int pooledHalf = cond.pooled().length / 2;
            double dNeg = ReferenceData.maxAbsDiff(Arrays.copyOfRange(cond.embeds(), 0, half),
                    PipelineReferenceTest.floats(f, "encode_negative_prompt_embeds"));
            double dPos = ReferenceData.maxAbsDiff(Arrays.copyOfRange(cond.embeds(), half, 2 * half),
                    PipelineReferenceTest.floats(f, "encode_prompt_embeds"));
            double dNegPooled = ReferenceData.maxAbsDiff(Arrays.copyOfRange(cond.pooled(), 0, pooledHalf),
                    PipelineReferenceTest.floats(f, "encode_negative_pooled_prompt_embeds"));
            float[] pooled = Arrays.copyOfRange(cond.pooled(), pooledHalf, 2 * pooledHalf);
            double dPooled = ReferenceData.maxAbsDiff(pooled, PipelineReferenceTest.floats(f, "encode_pooled_prompt_embeds"));
            System.out.printf("%s encode_prompt: prompt_embeds %.3g, negative %.3g, pooled %.3g, negative pooled %.3g%n",
                    name, dPos, dNeg, dPooled, dNegPooled);
            assertTrue(dPos <= TEXT_ATOL && dNeg <= TEXT_ATOL && dPooled <= TEXT_ATOL && dNegPooled <= TEXT_ATOL,
                    name + ": encode_prompt differs: prompt_embeds " + dPos + ", negative " + dNeg + ", pooled " + dPooled
                            + ", negative pooled " + dNegPooled);
            PipelineReferenceTest.compare(c, f, file, "", result, rec);
        }
    }
}
