package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * transformers 4.44's slow CLIPTokenizer, as SDXL's two tokenizers are configured, on every prompt of
 * cases/tokenizer: {@code ids_tok1/2} (padding="max_length", max_length=77, truncation=True, as the pipelines
 * call it) and {@code untrunc_tok1/2} (padding="longest") must match exactly, and so must the token strings the
 * index records.
 */
class ClipTokenizerReferenceTest {
    private static final String GROUP = "tokenizer";

    private static ClipTokenizer tokenizer;
    private static ClipTokenizer tokenizer2;

    private static synchronized ClipTokenizer tokenizer(int which) {
        if (tokenizer == null) {
            tokenizer = ClipTokenizer.load(ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer"));
            tokenizer2 = ClipTokenizer.load(ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer_2"));
        }
        return which == 1 ? tokenizer : tokenizer2;
    }

    @TestFactory
    Stream<DynamicTest> everyPrompt() {
        return ReferenceData.cases(GROUP).stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        String name = c.get("name").asText();
        String prompt = c.get("params").get("prompt").asText();
        String what = name + " " + quote(prompt);
        int exact = 0;
        try (SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile(GROUP, c))) {
            for (int which = 1; which <= 2; which++) {
                ClipTokenizer tok = tokenizer(which);
                assertArrayEquals(expected(f, "ids_tok" + which), tok.inputIds(prompt), what + ": ids_tok" + which);
                exact++;
                long[] untruncated = tok.untruncated(prompt);
                assertArrayEquals(expected(f, "untrunc_tok" + which), untruncated, what + ": untrunc_tok" + which);
                exact++;
                assertEquals(c.get("untrunc_len_tok" + which).asInt(), untruncated.length, what + ": untrunc_len_tok" + which);
                List<String> tokens = new ArrayList<>();
                tokens.add(tok.bosToken());
                tokens.addAll(tok.tokenize(prompt));
                tokens.add(tok.eosToken());
                List<String> expectedTokens = new ArrayList<>();
                c.get("tokens_tok" + which).forEach(t -> expectedTokens.add(t.asText()));
                assertEquals(expectedTokens, tokens, what + ": tokens_tok" + which);
            }
        }
        System.out.printf("[reference] tokenizer %s: %d/4 id arrays exact (%s)%n", name, exact, quote(prompt));
    }

    private static long[] expected(SafetensorsFile f, String name) {
        try (Tensor t = f.tensor(name)) {
            return t.toLongArray();
        }
    }

    private static String quote(String s) {
        String q = s.replace("\n", "\\n").replace("\t", "\\t");
        return "\"" + (q.length() > 60 ? q.substring(0, 57) + "..." : q) + "\"";
    }
}
