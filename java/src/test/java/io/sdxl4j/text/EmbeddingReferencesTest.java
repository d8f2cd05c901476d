package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.SdxlException;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Embedding names in prompts (ComfyUI's embedding:NAME, A1111's bare NAME) and diffusers' multi-vector expansion. */
class EmbeddingReferencesTest {
    private static final Map<String, String> TOKENS = Map.of("my-style", "<my-style>", "neg", "<neg>", "my", "<my>");

    private static String rewrite(String prompt, boolean a1111) {
        return EmbeddingReferences.rewrite(prompt, a1111, TOKENS.keySet(), TOKENS::get);
    }

    @Test
    void comfyReferencesInEverySyntax() {
        assertEquals("a photo of <my-style>, oil", rewrite("a photo of embedding:my-style, oil", false));
        assertEquals("(<neg>:1.2) x", rewrite("(embedding:neg.safetensors:1.2) x", false));
        assertEquals(Set.of("my-style", "neg"), EmbeddingReferences.comfyNames("embedding:my-style embedding:neg"));
        // an unknown name is refused, naming it
        SdxlException e = assertThrows(SdxlException.class, () -> rewrite("a embedding:nothere b", false));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("embedding:nothere"), e.getMessage());
    }

    @Test
    void a1111BareNamesAreWholeWordsCaseInsensitive() {
        assertEquals("a photo of <my-style>, (<neg>:1.1)", rewrite("a photo of my-style, (neg:1.1)", true));
        assertEquals("<my-style> and <my> style", rewrite("My-Style and my style", true));  // longest name first
        // inside words, or already written as a token: unchanged
        assertEquals("amy-style negative <neg> neg_1", rewrite("amy-style negative <neg> neg_1", true));
        assertEquals("negative", rewrite("negative", true));
        // without the A1111 syntax bare names stay text
        assertEquals("a photo of my-style", rewrite("a photo of my-style", false));
        assertEquals(Set.of("my-style", "neg"), EmbeddingReferences.a1111Names("MY-STYLE, neg", TOKENS.keySet()));
        assertTrue(EmbeddingReferences.a1111Names("mystyle", TOKENS.keySet()).isEmpty());
    }

    @Test
    void expandMultiVectorAsMaybeConvertPrompt() {
        ClipTokenizer base = ClipTokenizer.load(ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer"));
        ClipTokenizer tok = base.withAddedTokens(List.of("<emb>", "<emb>_1", "<emb>_2", "<one>"));
        assertEquals("a <emb> <emb>_1 <emb>_2 and <emb> <emb>_1 <emb>_2, <one>",
                EmbeddingReferences.expandMultiVector("a <emb> and <emb>, <one>", tok));
        // the token matches inside text as transformers' added tokens do (raw text, case-sensitive)
        assertEquals("x<emb> <emb>_1 <emb>_2y", EmbeddingReferences.expandMultiVector("x<emb>y", tok));
        assertEquals("<EMB>", EmbeddingReferences.expandMultiVector("<EMB>", tok));
        assertEquals("no tokens", EmbeddingReferences.expandMultiVector("no tokens", base));
    }

    @Test
    void addedTokensGetIdsAfterTheVocabulary() {
        ClipTokenizer base = ClipTokenizer.load(ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer"));
        assertEquals(49408, base.size());
        ClipTokenizer tok = base.withAddedTokens(List.of("<emb>", "<emb>_1"));
        assertEquals(49410, tok.size());
        assertEquals(49408, base.size(), "the original tokenizer is unchanged");
        assertFalse(base.isAddedToken("<emb>"));
        assertTrue(tok.isAddedToken("<emb>_1"));
        assertEquals(List.of(320, 49408, 49409, 2368), toList(tok.encode("a <emb> <emb>_1 cat")));
        // old ids unchanged
        assertEquals(toList(base.encode("a photo of a cat")), toList(tok.encode("a photo of a cat")));
        // a token already in the vocabulary or already added is refused
        for (List<String> bad : List.of(List.of("cat</w>"), List.of("<|endoftext|>"), List.of("<x>", "<x>"), List.of(""))) {
            SdxlException e = assertThrows(SdxlException.class, () -> base.withAddedTokens(bad), bad.toString());
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        }
        SdxlException e = assertThrows(SdxlException.class, () -> tok.withAddedTokens(List.of("<emb>")));
        assertTrue(e.getMessage().contains("already"), e.getMessage());
    }

    private static List<Integer> toList(int[] a) {
        return java.util.Arrays.stream(a).boxed().toList();
    }
}
