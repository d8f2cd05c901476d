package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.SdxlException;
import io.sdxl4j.text.A1111Prompt.Chunk;
import io.sdxl4j.text.A1111Prompt.WeightedText;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link A1111Prompt}. Every expected fragment list below is what AUTOMATIC1111's
 * {@code modules/prompt_parser.py: parse_prompt_attention} returns for the same prompt (the version whose
 * {@code re_attention} reads {@code :\s*([+-]?[.\d]+)\s*\)}), worked out from its source: weights are the Python
 * float products in its order ({@code 1.1 * 1.1 = 1.2100000000000002}, {@code 1 / 1.1 = 0.9090909090909091}), and
 * were checked by running that function under Python 3. Expected chunks follow {@code modules/sd_hijack_clip.py:
 * tokenize_line} / {@code process_tokens} with {@code comma_padding_backtrack = 20}. Token ids are CLIP's:
 * "a" 320, "," 267, "cat" 2368, "word" 2653.
 */
class A1111PromptTest {
    private static final long BOS = 49406;
    private static final long EOS = 49407;
    private static final long A = 320;
    private static final long COMMA = 267;
    private static final long CAT = 2368;
    private static final long WORD = 2653;

    private static ClipTokenizer tok;
    private static ClipTokenizer tok2;

    @BeforeAll
    static void load() {
        tok = ClipTokenizer.load(ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer"));
        tok2 = ClipTokenizer.load(ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer_2"));
    }

    private static WeightedText wt(String text, double weight) {
        return new WeightedText(text, weight);
    }

    private static void assertParse(String prompt, WeightedText... expected) {
        List<WeightedText> actual = A1111Prompt.parse(prompt);
        assertEquals(List.of(expected), actual, () -> "parse(" + prompt + ")");
    }

    // ------------------------------------------------------------------------------------------------ parse

    @Test
    void plainText() {
        // doctest: parse_prompt_attention('normal text') == [['normal text', 1.0]]
        assertParse("a photo of a cat", wt("a photo of a cat", 1.0));
    }

    @Test
    void roundBracketsMultiplyBy1point1() {
        assertParse("(word)", wt("word", 1.1));
        // 1.1 * 1.1 in double
        assertParse("((word))", wt("word", 1.2100000000000002));
        // doctest: 'an (important) word' -> [['an ', 1.0], ['important', 1.1], [' word', 1.0]]
        assertParse("an (important) word", wt("an ", 1.0), wt("important", 1.1), wt(" word", 1.0));
        // doctest: adjacent fragments with equal weights merge
        assertParse("(unnecessary)(parens)", wt("unnecessaryparens", 1.1));
    }

    @Test
    void squareBracketsDivideBy1point1() {
        // square_bracket_multiplier = 1 / 1.1
        assertParse("[word]", wt("word", 0.9090909090909091));
        assertParse("[[word]]", wt("word", 0.8264462809917354));
        // 1.0 * (1 / 1.1) * 1.1 == 1.0 exactly in double
        assertParse("([word])", wt("word", 1.0));
    }

    @Test
    void explicitWeights() {
        assertParse("(word:1.5)", wt("word", 1.5));
        // current re_attention allows spaces around the number
        assertParse("(word: 1.5 )", wt("word", 1.5));
        // [+-]?[.\d]+ with Python's float(): "+.5", "5.", "-1"
        assertParse("(word:+.5)", wt("word", 0.5));
        assertParse("(word:5.)", wt("word", 5.0));
        assertParse("(word:-1)", wt("word", -1.0));
        // \d and float() accept any Unicode decimal digits: Arabic-Indic "١.٥" is 1.5
        assertParse("(word:\u0661.\u0665)", wt("word", 1.5));
        // nesting multiplies: a and c get 0.5; b gets 2 * 0.5
        assertParse("(a (b:2) c:0.5)", wt("a ", 0.5), wt("b", 1.0), wt(" c", 0.5));
        // the doctest of parse_prompt_attention
        assertParse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
                wt("a ", 1.0), wt("house", 1.5730000000000004), wt(" ", 1.1), wt("on", 1.0), wt(" a ", 1.1),
                wt("hill", 0.55), wt(", sun, ", 1.1), wt("sky", 1.4641000000000006), wt(".", 1.1));
    }

    @Test
    void escapes() {
        assertParse("\\(literal\\)", wt("(literal)", 1.0));
        // doctest: '\(literal\]' -> [['(literal]', 1.0]]
        assertParse("\\(literal\\]", wt("(literal]", 1.0));
        assertParse("\\[a\\] \\\\", wt("[a] \\", 1.0));
        // a lone backslash matches re_attention's "\\" alternative alone and yields text[1:] == ""
        assertParse("a\\b", wt("ab", 1.0));
        // escaped brackets inside real ones
        assertParse("(\\(x\\))", wt("(x)", 1.1));
    }

    @Test
    void unbalancedBrackets() {
        // unclosed "(" multiplies the rest by 1.1 at the end (doctest: '(unbalanced' -> 1.1)
        assertParse("(a b", wt("a b", 1.1));
        assertParse("x (a b", wt("x ", 1.0), wt("a b", 1.1));
        // ")" with no open round bracket falls through to the text branch
        assertParse("a b)", wt("a b)", 1.0));
        // unclosed "[" multiplies by 1 / 1.1
        assertParse("[a", wt("a", 0.9090909090909091));
        // "]" with nothing open is text; "[" after it stays open to the end
        assertParse("a ]b[ c", wt("a ]b", 1.0), wt(" c", 0.9090909090909091));
        // ")" closes the round bracket, "]" the square one, regardless of interleaving
        assertParse("(a [b) c]", wt("a ", 1.1), wt("b", 1.0), wt(" c", 0.9090909090909091));
        // ":1.5)" with no open bracket: the weight alternative matches but the text branch takes it
        assertParse("a:1.5) b", wt("a:1.5) b", 1.0));
    }

    @Test
    void weightThatIsNotANumberIsLiteral() {
        // ":abc)" does not match ":\s*([+-]?[.\d]+)\s*\)": ":" and "abc" are text, ")" closes with 1.1
        assertParse("(word:abc)", wt("word:abc", 1.1));
        // exponents are not in [.\d]: same
        assertParse("(word:1e2)", wt("word:1e2", 1.1));
    }

    @Test
    void weightThatMatchesTheRegexButIsNoNumberIsRejected() {
        // A1111: float('1.2.3') raises ValueError; here a clear INVALID_ARGUMENT instead
        for (String bad : List.of("(a:1.2.3)", "(a:.)", "(a:-..)")) {
            SdxlException e = assertThrows(SdxlException.class, () -> A1111Prompt.parse(bad), bad);
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            assertTrue(e.getMessage().contains("is not a number"), e.getMessage());
        }
        assertThrows(SdxlException.class, () -> A1111Prompt.parse(null));
    }

    @Test
    void breakMarkers() {
        // re_break = \s*\bBREAK\b\s* splits the text run; the marker is ["BREAK", -1]
        assertParse("a BREAK b", wt("a", 1.0), wt("BREAK", -1), wt("b", 1.0));
        assertTrue(A1111Prompt.parse("a BREAK b").get(1).isBreak());
        assertParse("BREAK", wt("", 1.0), wt("BREAK", -1), wt("", 1.0));
        assertParse("a BREAK BREAK b", wt("a", 1.0), wt("BREAK", -1), wt("", 1.0), wt("BREAK", -1), wt("b", 1.0));
        // not a word of its own, or not upper case: plain text
        assertParse("xBREAK b", wt("xBREAK b", 1.0));
        assertParse("a_BREAK b", wt("a_BREAK b", 1.0));
        assertParse("a break b", wt("a break b", 1.0));
        // inside brackets the marker's -1 is multiplied too, so A1111 no longer sees a break
        assertParse("(BREAK)", wt("", 1.1), wt("BREAK", -1.1), wt("", 1.1));
        assertFalse(A1111Prompt.parse("(BREAK)").get(1).isBreak());
    }

    @Test
    void emptyPrompt() {
        // len(res) == 0 -> [["", 1.0]]
        assertParse("", wt("", 1.0));
        assertParse("()", wt("", 1.0));
    }

    // ----------------------------------------------------------------------------------------------- chunks

    /** bos, content, then eos up to 77 (tokenizer pads with eos), weights 1.0 outside content. */
    private static void assertChunk(Chunk c, long[] content, float[] contentWeights) {
        long[] ids = new long[77];
        float[] weights = new float[77];
        Arrays.fill(ids, EOS);
        Arrays.fill(weights, 1.0f);
        ids[0] = BOS;
        System.arraycopy(content, 0, ids, 1, content.length);
        System.arraycopy(contentWeights, 0, weights, 1, contentWeights.length);
        assertArrayEquals(ids, c.ids());
        assertArrayEquals(weights, c.weights());
    }

    private static long[] repeat(long id, int n) {
        long[] out = new long[n];
        Arrays.fill(out, id);
        return out;
    }

    private static float[] repeat(float w, int n) {
        float[] out = new float[n];
        Arrays.fill(out, w);
        return out;
    }

    private static long[] concat(long[]... parts) {
        List<Long> all = new ArrayList<>();
        for (long[] p : parts) {
            for (long v : p) {
                all.add(v);
            }
        }
        return all.stream().mapToLong(Long::longValue).toArray();
    }

    private static float[] concat(float[]... parts) {
        int n = 0;
        for (float[] p : parts) {
            n += p.length;
        }
        float[] out = new float[n];
        int k = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, k, p.length);
            k += p.length;
        }
        return out;
    }

    @Test
    void perTokenWeightsInOneChunk() {
        // "a (cat) [word] (a:1.5)": multipliers are float32 copies of the fragment weights
        List<Chunk> chunks = A1111Prompt.chunks("a (cat) [word] (a:1.5)", tok);
        assertEquals(1, chunks.size());
        assertChunk(chunks.get(0), new long[] {A, CAT, WORD, A},
                new float[] {1.0f, 1.1f, (float) (1 / 1.1), 1.5f});
    }

    @Test
    void emptyPromptIsOneChunk() {
        // tokenize_line: "if chunk.tokens or not chunks: next_chunk(is_last=True)"
        List<Chunk> chunks = A1111Prompt.chunks("", tok);
        assertEquals(1, chunks.size());
        assertChunk(chunks.get(0), new long[0], new float[0]);
    }

    @Test
    void breakStartsANewPaddedChunk() {
        List<Chunk> chunks = A1111Prompt.chunks("a cat BREAK (word)", tok);
        assertEquals(2, chunks.size());
        assertChunk(chunks.get(0), new long[] {A, CAT}, new float[] {1f, 1f});
        assertChunk(chunks.get(1), new long[] {WORD}, new float[] {1.1f});
        // trailing BREAK: the next chunk stays empty and is not emitted
        assertEquals(1, A1111Prompt.chunks("a BREAK", tok).size());
        // leading BREAK: next_chunk() emits an empty (all padding) chunk first
        List<Chunk> lead = A1111Prompt.chunks("BREAK a", tok);
        assertEquals(2, lead.size());
        assertChunk(lead.get(0), new long[0], new float[0]);
        assertChunk(lead.get(1), new long[] {A}, new float[] {1f});
        // (BREAK) is no break: the word "break</w>" (id 2568) with weight -1.1, inside one chunk
        List<Chunk> bracketed = A1111Prompt.chunks("(BREAK)", tok);
        assertEquals(1, bracketed.size());
        assertChunk(bracketed.get(0), new long[] {2568}, new float[] {-1.1f});
    }

    @Test
    void longPromptWithoutCommaSplitsAt75() {
        List<Chunk> chunks = A1111Prompt.chunks("a ".repeat(80), tok);
        assertEquals(2, chunks.size());
        assertChunk(chunks.get(0), repeat(A, 75), repeat(1f, 75));
        assertChunk(chunks.get(1), repeat(A, 5), repeat(1f, 5));
    }

    @Test
    void commaBacktrackMovesTheTailToTheNextChunk() {
        // tokens: a x70 (0..69), "," (70), cat x10 weighted 1.5. The 76th token (5th cat) finds the chunk full
        // with the last comma at 70, 75 - 70 = 5 <= 20: the 4 cats after the comma move to chunk 2.
        String prompt = "a ".repeat(70) + ", (" + "cat ".repeat(10) + ":1.5)";
        List<Chunk> chunks = A1111Prompt.chunks(prompt, tok);
        assertEquals(2, chunks.size());
        assertChunk(chunks.get(0), concat(repeat(A, 70), new long[] {COMMA}), repeat(1f, 71));
        assertChunk(chunks.get(1), repeat(CAT, 10), repeat(1.5f, 10));

        // with comma_padding_backtrack = 0 the chunk is simply cut at 75
        List<Chunk> plain = A1111Prompt.chunks(prompt, tok, 0);
        assertEquals(2, plain.size());
        assertChunk(plain.get(0), concat(repeat(A, 70), new long[] {COMMA}, repeat(CAT, 4)),
                concat(repeat(1f, 71), repeat(1.5f, 4)));
        assertChunk(plain.get(1), repeat(CAT, 6), repeat(1.5f, 6));
    }

    @Test
    void commaBacktrackLimitIs20Tokens() {
        // comma at 55: 75 - 55 = 20 <= 20, backtrack; the 19 a's after it move
        List<Chunk> at20 = A1111Prompt.chunks("a ".repeat(55) + ", " + "a ".repeat(30), tok);
        assertEquals(2, at20.size());
        assertChunk(at20.get(0), concat(repeat(A, 55), new long[] {COMMA}), repeat(1f, 56));
        assertChunk(at20.get(1), repeat(A, 30), repeat(1f, 30));
        // comma at 54: 21 > 20, no backtrack
        List<Chunk> at21 = A1111Prompt.chunks("a ".repeat(54) + ", " + "a ".repeat(30), tok);
        assertEquals(2, at21.size());
        assertChunk(at21.get(0), concat(repeat(A, 54), new long[] {COMMA}, repeat(A, 20)), repeat(1f, 75));
        assertChunk(at21.get(1), repeat(A, 10), repeat(1f, 10));
        // exactly 75 tokens: one chunk, no empty second one
        assertEquals(1, A1111Prompt.chunks("a ".repeat(75), tok).size());
    }

    @Test
    void tokenizer2PadsWithItsPadIdAfterTheFirstEnd() {
        // process_tokens: when id_end != id_pad, every id after the first end token becomes the pad id (0, "!")
        Chunk c = A1111Prompt.chunks("a (cat)", tok2).get(0);
        long[] ids = repeat(0, 77);
        ids[0] = BOS;
        ids[1] = A;
        ids[2] = CAT;
        ids[3] = EOS;
        assertArrayEquals(ids, c.ids());
        assertArrayEquals(concat(new float[] {1f, 1f, 1.1f}, repeat(1f, 74)), c.weights());
    }

    // --------------------------------------------------------------------------------------------- emphasis

    @Test
    void emphasisScalesRowsAndRestoresTheMean() {
        // 2 tokens x 2 dims, weights 1 and 2: rows become [1,1],[2,2] (mean 1.5), then times 1.0 / 1.5
        float[] h = {1f, 1f, 1f, 1f};
        A1111Prompt.applyEmphasis(h, new float[] {1f, 2f}, 2, true);
        float third = (float) (1.0 / 1.5);
        assertArrayEquals(new float[] {third, third, 2 * third, 2 * third}, h, 1e-6f);
        // "No norm": multiplication only
        float[] g = {1f, -3f, 0.5f, 2f};
        A1111Prompt.applyEmphasis(g, new float[] {1f, 2f}, 2, false);
        assertArrayEquals(new float[] {1f, -3f, 1f, 4f}, g);
        assertThrows(SdxlException.class, () -> A1111Prompt.applyEmphasis(new float[3], new float[2], 2, true));
    }
}
