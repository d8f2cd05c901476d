package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.ClipTextOutput;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link Compel}'s composition rules on the tiny SDXL text encoders (the numbers themselves are checked against
 * compel in {@link CompelReferenceTest}): conjunction, blend, swap, padding, batching, the masked encoder
 * against the native one, and errors.
 */
class CompelTest {
    private static final int L = 77;
    private static final int D = 80; // 32 (text_encoder) + 48 (text_encoder_2)
    private static Path base;
    private static Compel compel;
    private static Compel untruncated;

    @BeforeAll
    static void load() {
        base = ReferenceData.root().resolve("models/tiny-sdxl-base");
        compel = Compel.load(base, null, true);
        untruncated = Compel.load(base, null, false);
    }

    @AfterAll
    static void close() {
        compel.close();
        untruncated.close();
    }

    private static float[] cond(Compel c, String prompt) {
        try (Compel.Output o = c.encode(prompt)) {
            return o.conditioning().toFloatArray();
        }
    }

    private static float[] pooled(Compel c, String prompt) {
        try (Compel.Output o = c.encode(prompt)) {
            return o.pooled().toFloatArray();
        }
    }

    private static float[] empty(Compel c) {
        try (Tensor t = c.emptyConditioning()) {
            assertArrayEquals(new long[] {1, L, D}, t.shape());
            return t.toFloatArray();
        }
    }

    private static void assertClose(float[] expected, float[] actual, double tol, String what) {
        double d = ReferenceData.maxAbsDiff(expected, actual);
        assertTrue(d <= tol, what + ": max |diff| " + d + " > " + tol);
    }

    @Test
    void shapes() {
        try (Compel.Output o = compel.encode("a photo of a cat")) {
            assertArrayEquals(new long[] {1, L, D}, o.conditioning().shape());
            assertArrayEquals(new long[] {1, 24}, o.pooled().shape());
        }
        String longPrompt = "word ".repeat(160); // 160 tokens: 3 chunks untruncated
        try (Compel.Output o = untruncated.encode(longPrompt); Compel.Output t = compel.encode(longPrompt)) {
            assertArrayEquals(new long[] {1, 3 * L, D}, o.conditioning().shape());
            assertArrayEquals(new long[] {1, L, D}, t.conditioning().shape());
        }
    }

    @Test
    void conjunctionConcatenatesAndWeightsFromTheEmptyPrompt() {
        float[] cat = cond(compel, "cat");
        float[] dog = cond(compel, "dog");
        float[] both = cond(compel, "(cat, dog).and()");
        assertEquals(2 * L * D, both.length);
        assertArrayEquals(cat, Arrays.copyOfRange(both, 0, L * D));
        assertArrayEquals(dog, Arrays.copyOfRange(both, L * D, 2 * L * D));

        float[] weighted = cond(compel, "(cat, dog).and(1, 0.5)");
        float[] e = empty(compel);
        float[] expected = new float[L * D];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = e[i] + (dog[i] - e[i]) * 0.5f;
        }
        assertArrayEquals(cat, Arrays.copyOfRange(weighted, 0, L * D));
        assertClose(expected, Arrays.copyOfRange(weighted, L * D, 2 * L * D), 1e-6, "0.5-weighted part");
    }

    @Test
    void blendIsANormalisedWeightedSum() {
        float[] a = cond(compel, "a red cat");
        float[] b = cond(compel, "a blue dog");
        float[] blend = cond(compel, "(\"a red cat\", \"a blue dog\").blend(1, 3)");
        float[] raw = cond(compel, "(\"a red cat\", \"a blue dog\").blend(1, 3, no_normalize)");
        float[] expected = new float[a.length];
        float[] expectedRaw = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            expected[i] = 0.25f * a[i] + 0.75f * b[i];
            expectedRaw[i] = a[i] + 3 * b[i];
        }
        assertClose(expected, blend, 1e-5, "normalised blend");
        assertClose(expectedRaw, raw, 1e-5, "unnormalised blend");
    }

    @Test
    void weightsScaleFromTheEmptyPromptAndDownweightingMasks() {
        float[] plain = cond(compel, "a red cat");
        float[] e = empty(compel);
        // "a (red cat)2": every prompt token moves twice as far from the empty prompt's encoding
        float[] doubled = cond(compel, "(a red cat)2");
        float[] expected = new float[plain.length];
        for (int t = 0; t < L; t++) {
            float w = t >= 1 && t <= 3 ? 2f : 1f; // bos, a red cat, eos...
            for (int h = 0; h < D; h++) {
                int i = t * D + h;
                expected[i] = e[i] + (plain[i] - e[i]) * w;
            }
        }
        assertClose(expected, doubled, 1e-5, "weight 2");
        // a weight just below 1 changes almost nothing; a weight of 0.5 is a real change
        assertClose(plain, cond(compel, "a (red)0.99999 cat"), 1e-3, "weight 0.99999");
        assertTrue(ReferenceData.maxAbsDiff(plain, cond(compel, "a (red)0.5 cat")) > 1e-2);
        // untruncated: a downweighted fragment in the second chunk masks only there
        String longPrompt = "word ".repeat(80) + "(red)0.5 cat";
        float[] lw = cond(untruncated, longPrompt);
        float[] lp = cond(untruncated, "word ".repeat(80) + "red cat");
        assertEquals(2 * L * D, lw.length);
        assertClose(Arrays.copyOfRange(lp, 0, L * D), Arrays.copyOfRange(lw, 0, L * D), 1e-5, "first chunk (nothing masked there)");
        assertTrue(ReferenceData.maxAbsDiff(Arrays.copyOfRange(lp, L * D, 2 * L * D), Arrays.copyOfRange(lw, L * D, 2 * L * D)) > 1e-2);
    }

    @Test
    void swapEncodesTheOriginalAndPooledUsesTheRawText() {
        assertArrayEquals(cond(compel, "a cat playing"), cond(compel, "a cat.swap(dog) playing"));
        float[] rawPooled = pooled(compel, "a (red)1.2 cat");
        assertTrue(ReferenceData.maxAbsDiff(pooled(compel, "a red cat"), rawPooled) > 1e-3, "pooled sees the syntax");
    }

    @Test
    void onlySyntaxEncodesAsTheEmptyPrompt() {
        assertArrayEquals(empty(compel), cond(compel, "()"));
        assertArrayEquals(empty(compel), cond(compel, ""));
        assertArrayEquals(empty(compel), cond(compel, "withLora(x, 0.5)"));
    }

    @Test
    void padToSameLength() {
        float[] e = empty(untruncated);
        try (Compel.Output a = untruncated.encode("word ".repeat(160)); Compel.Output b = untruncated.encode("a cat")) {
            List<Tensor> padded = untruncated.padToSameLength(List.of(a.conditioning(), b.conditioning()));
            try {
                assertArrayEquals(new long[] {1, 3 * L, D}, padded.get(0).shape());
                assertArrayEquals(new long[] {1, 3 * L, D}, padded.get(1).shape());
                assertArrayEquals(a.conditioning().toFloatArray(), padded.get(0).toFloatArray());
                float[] pb = padded.get(1).toFloatArray();
                assertArrayEquals(b.conditioning().toFloatArray(), Arrays.copyOfRange(pb, 0, L * D));
                assertArrayEquals(e, Arrays.copyOfRange(pb, L * D, 2 * L * D));
                assertArrayEquals(e, Arrays.copyOfRange(pb, 2 * L * D, 3 * L * D));
            } finally {
                padded.forEach(Tensor::close);
            }
        }
        // unbatched [L, D] comes back batched; mismatched feature sizes are an error
        try (Tensor flat = Tensor.of(new float[L * D], L, D); Tensor other = Tensor.of(new float[L * 7], 1, L, 7);
             Tensor three = Tensor.of(new float[L * D], 1, L, D)) {
            List<Tensor> out = untruncated.padToSameLength(List.of(flat));
            assertArrayEquals(new long[] {1, L, D}, out.get(0).shape());
            out.forEach(Tensor::close);
            assertEquals(ErrorCode.INVALID_ARGUMENT,
                    assertThrows(SdxlException.class, () -> untruncated.padToSameLength(List.of(three, other))).code());
            assertEquals(ErrorCode.INVALID_ARGUMENT,
                    assertThrows(SdxlException.class, () -> untruncated.padToSameLength(List.of(flat, three))).code());
            assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> untruncated.padToSameLength(List.of())).code());
        }
    }

    @Test
    void batchEncodePadsAndStacks() {
        List<String> prompts = List.of("word ".repeat(100), "a (red)1.2 cat");
        try (Compel.Output batch = untruncated.encode(prompts)) {
            assertArrayEquals(new long[] {2, 2 * L, D}, batch.conditioning().shape());
            assertArrayEquals(new long[] {2, 24}, batch.pooled().shape());
            float[] all = batch.conditioning().toFloatArray();
            float[] second = cond(untruncated, "a (red)1.2 cat");
            assertArrayEquals(second, Arrays.copyOfRange(all, 2 * L * D, 2 * L * D + L * D));
            assertArrayEquals(pooled(untruncated, "a (red)1.2 cat"), Arrays.copyOfRange(batch.pooled().toFloatArray(), 24, 48));
        }
    }

    @Test
    void refinerStyleSingleEncoder() {
        ClipTokenizer tok2 = ClipTokenizer.load(base.resolve("tokenizer_2"));
        try (ClipTextModel te2 = ClipTextModel.load(base.resolve("text_encoder_2"), null);
             Compel refiner = new Compel(List.of(new Compel.TextEncoder(tok2, te2, true)), true);
             Compel.Output o = refiner.encode("a (red)0.5 cat")) {
            assertArrayEquals(new long[] {1, L, 48}, o.conditioning().shape());
            float[] full = cond(compel, "a (red)0.5 cat");
            float[] te2Part = new float[L * 48];
            for (int t = 0; t < L; t++) {
                System.arraycopy(full, t * D + 32, te2Part, t * 48, 48);
            }
            assertArrayEquals(te2Part, o.conditioning().toFloatArray()); // text_encoder_2's features, unchanged
        }
    }

    @Test
    void nativeMaskedEncoderMatchesAnIndependentJavaEncoder() {
        // MaskedClipText (test sources) recomputes CLIP from the weight file with Ops: an independent oracle
        // for the native attention_mask path that compel's down-weighting uses.
        ClipTokenizer tok = ClipTokenizer.load(base.resolve("tokenizer_2"));
        Path dir = base.resolve("text_encoder_2");
        long[] ids = tok.inputIds("a red cat on a blue mat", L);
        float[] ones = new float[L];
        Arrays.fill(ones, 1f);
        float[] m = ones.clone();
        m[2] = 0; // "red"
        try (ClipTextModel model = ClipTextModel.load(dir, null);
             MaskedClipText oracle = MaskedClipText.open(dir, null, model.config());
             Tensor t = Tensor.ofLongs(ids, 1, L);
             Tensor mask = Tensor.of(m, 1, L);
             ClipTextOutput out = model.forward(t);
             ClipTextOutput masked = model.forward(t, mask)) {
            float[] nat = out.penultimate().toFloatArray();
            float[] z = masked.penultimate().toFloatArray();
            assertClose(nat, oracle.penultimate(ids, ones), 1e-5, "all-ones mask vs native");
            assertClose(z, oracle.penultimate(ids, m), 1e-5, "masked: native vs Java oracle");
            int h = 48;
            // causal: positions before the masked one are unchanged, later ones change
            assertClose(Arrays.copyOfRange(nat, 0, 2 * h), Arrays.copyOfRange(z, 0, 2 * h), 1e-5, "before the mask");
            assertTrue(ReferenceData.maxAbsDiff(Arrays.copyOfRange(nat, 3 * h, 4 * h), Arrays.copyOfRange(z, 3 * h, 4 * h)) > 1e-3);
        }
    }

    @Test
    void errors() {
        assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> compel.encode((String) null)).code());
        assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> compel.encode("a\u000cb")).code());
        assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> new Compel(List.of(), true)).code());
        // down-weighting works without the weights folder (the native model takes the attention mask)
        ClipTokenizer tok2 = ClipTokenizer.load(base.resolve("tokenizer_2"));
        try (ClipTextModel te2 = ClipTextModel.load(base.resolve("text_encoder_2"), null);
             Compel noFolder = new Compel(List.of(new Compel.TextEncoder(tok2, te2, true)), true);
             Compel.Output o = noFolder.encode("a (red)0.5 cat")) {
            assertArrayEquals(new long[] {1, L, 48}, o.conditioning().shape());
        }
        // pooled output needs the projection (text_encoder has none)
        ClipTokenizer tok1 = ClipTokenizer.load(base.resolve("tokenizer"));
        try (ClipTextModel te1 = ClipTextModel.load(base.resolve("text_encoder"), null)) {
            assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class,
                    () -> new Compel(List.of(new Compel.TextEncoder(tok1, te1, true)), true)).code());
            try (Compel c = new Compel(List.of(new Compel.TextEncoder(tok1, te1, false)), true);
                 Compel.Output o = c.encode("a cat")) {
                assertNull(o.pooled());
            }
        }
        Compel closed = Compel.load(base, null, true);
        closed.close();
        closed.close(); // idempotent
        assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> closed.encode("a cat")).code());
    }
}
