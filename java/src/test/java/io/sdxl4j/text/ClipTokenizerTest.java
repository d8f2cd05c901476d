package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Behaviour of {@link ClipTokenizer} on SDXL's two tokenizer folders. Expected ids that are not from the
 * reference set were computed with transformers' algorithm in Python 3.11 (Unicode 14.0), the reference's setup.
 */
class ClipTokenizerTest {
    private static final int BOS = 49406;
    private static final int EOS = 49407;

    private static Path folder1;
    private static Path folder2;
    private static ClipTokenizer tok1;
    private static ClipTokenizer tok2;

    @BeforeAll
    static void load() {
        folder1 = ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer");
        folder2 = ReferenceData.root().resolve("models/tiny-sdxl-base/tokenizer_2");
        tok1 = ClipTokenizer.load(folder1);
        tok2 = ClipTokenizer.load(folder2);
    }

    // ------------------------------------------------------------------------------------------- basics

    @Test
    void sanityPrompt() {
        long[] expected = {BOS, 320, 1125, 539, 320, 2368, EOS};
        assertArrayEquals(expected, tok1.untruncated("a photo of a cat"));
        assertArrayEquals(expected, tok2.untruncated("a photo of a cat"));
        assertArrayEquals(new int[] {320, 1125, 539, 320, 2368}, tok1.encode("a photo of a cat"));
        assertEquals(List.of("a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>"), tok1.tokenize("a photo of a cat"));

        long[] ids1 = tok1.inputIds("a photo of a cat");
        long[] ids2 = tok2.inputIds("a photo of a cat");
        assertEquals(77, ids1.length);
        assertEquals(77, ids2.length);
        assertArrayEquals(expected, Arrays.copyOf(ids1, 7));
        assertArrayEquals(expected, Arrays.copyOf(ids2, 7));
        for (int i = 7; i < 77; i++) {
            assertEquals(EOS, ids1[i], "tokenizer pads with <|endoftext|>");
            assertEquals(0, ids2[i], "tokenizer_2 pads with \"!\"");
        }
    }

    @Test
    void accessorsFollowTheConfigFiles() {
        assertEquals(BOS, tok1.bosId());
        assertEquals(EOS, tok1.eosId());
        assertEquals(EOS, tok1.padId());
        assertEquals(EOS, tok1.unkId());
        assertEquals("<|endoftext|>", tok1.padToken());
        assertEquals(BOS, tok2.bosId());
        assertEquals(EOS, tok2.eosId());
        assertEquals(0, tok2.padId());
        assertEquals("!", tok2.padToken());
        assertEquals(77, tok1.modelMaxLength());
        assertEquals(77, tok2.modelMaxLength());
        assertEquals(49408, tok1.vocabSize());
        assertEquals(folder1, tok1.folder());
        assertTrue(tok2.toString().contains("48894"), tok2.toString());
    }

    @Test
    void emptyAndBlankPrompts() {
        assertArrayEquals(new long[] {BOS, EOS}, tok1.untruncated(""));
        assertArrayEquals(new long[] {BOS, EOS}, tok2.untruncated(" \t\n "));
        assertEquals(0, tok1.encode("\u200b\u0000\ufffd").length, "format/control characters vanish");
    }

    // ------------------------------------------------------------------------------------- text clean-up

    @Test
    void numbersAreSplitIntoDigits() {
        assertArrayEquals(new int[] {272, 273, 274}, tok1.encode("123"));
        assertEquals(List.of("1</w>", "2</w>", "3</w>"), tok1.tokenize("123"));
        assertArrayEquals(new int[] {274, 269, 272, 275, 272, 276, 280}, tok1.encode("3.14159"));
        assertEquals(9, tok1.encode("1,000,000").length);
    }

    @Test
    void htmlEntitiesAreNotUnescaped() {
        assertEquals(List.of("&</w>", "amp</w>", ";</w>"), tok1.tokenize("&amp;"));
        assertArrayEquals(new int[] {261, 6259, 282}, tok1.encode("&amp;"));
        assertNotEquals(Arrays.toString(tok1.encode("&")), Arrays.toString(tok1.encode("&amp;")));
    }

    @Test
    void caseWhitespaceAndControlCharacters() {
        assertArrayEquals(tok1.encode("a photo of a cat"), tok1.encode("A PHOTO OF A CAT"));
        assertArrayEquals(tok1.encode("a photo"), tok1.encode("  a\u00a0\u3000photo\t"));
        assertArrayEquals(tok1.encode("line one line two tabbed"), tok1.encode("line one\nline two\n\ttabbed"));
        assertArrayEquals(tok1.encode("ab"), tok1.encode("a\u0000b"));
        assertArrayEquals(new int[] {546, 536}, tok1.encode("a\u200bcat"), "zero-width space is dropped, joining the words");
        assertArrayEquals(tok1.encode("東 京"), tok1.encode("東京"), "CJK ideographs are spaced");
        assertArrayEquals(new int[] {27667, 365, 21078, 361}, tok1.encode("東京"));
        assertArrayEquals(new int[] {15304}, tok1.encode("cafe\u0301"), "NFC");
        assertArrayEquals(tok1.encode("café"), tok1.encode("cafe\u0301"));
    }

    @Test
    void pythonLowerCasingAndPatternQuirks() {
        // Final sigma, decided like CPython's str.lower(): "οδος" ends in ς, "σα" starts with σ.
        assertArrayEquals(new int[] {138, 123, 138, 112, 138, 123, 139, 480, 139, 225, 138, 365}, tok1.encode("ΟΔΟΣ ΣΑ"));
        // U+0130 lower-cases to "i" + U+0307.
        assertArrayEquals(new int[] {328, 16384, 11231}, tok1.encode("İstanbul"));
        // IGNORECASE: "'ſ" (long s) is the contraction "'s"; U+212A (Kelvin) lower-cases to k.
        assertArrayEquals(new int[] {585, 6, 129, 379}, tok1.encode("it'ſ"));
        assertArrayEquals(new int[] {10849}, tok1.encode("K\u212a"));
        assertArrayEquals(new int[] {847, 713}, tok1.encode("don't"));
        // The regex module with IGNORECASE matches U+0345 with no alternative: it disappears.
        assertArrayEquals(new int[] {343, 344}, tok1.encode("x\u0345y"));
    }

    @Test
    void unicode14EmojiAreKeptOnEveryJdk() {
        // U+1FAE0 and U+1F979 are Unicode 14.0: JDK 17's own tables call them unassigned.
        assertArrayEquals(new int[] {558, 104, 510, 4156, 373}, tok1.encode("🫠 🥹"));
        assertEquals(List.of("ðŁ", "«", "ł</w>", "ðŁ¥", "¹</w>"), tok1.tokenize("🫠 🥹"));
    }

    // ------------------------------------------------------------------------------------ special tokens

    @Test
    void exclamationMarkIsThePadTokenOfTokenizer2() {
        assertArrayEquals(new int[] {256}, tok1.encode("!"));
        assertArrayEquals(new int[] {748}, tok1.encode("!!"));
        assertArrayEquals(new int[] {995}, tok1.encode("!!!"));
        assertArrayEquals(new int[] {0}, tok2.encode("!"));
        assertArrayEquals(new int[] {0, 0, 0}, tok2.encode("!!!"));
        assertArrayEquals(new int[] {2835}, tok1.encode("?!"));
        assertArrayEquals(new int[] {286, 0}, tok2.encode("?!"));
        assertArrayEquals(new int[] {3306, 1002, 256, 2781, 748}, tok1.encode("hello world! wow!!"));
        assertArrayEquals(new int[] {3306, 1002, 0, 2781, 0, 0}, tok2.encode("hello world! wow!!"));
        assertEquals(List.of("?</w>", "!"), tok2.tokenize("?!"));
    }

    @Test
    void specialTokensInsideAPrompt() {
        assertArrayEquals(new int[] {320, EOS, 321, 256}, tok1.encode("a<|endoftext|>b!"));
        assertArrayEquals(new int[] {320, EOS, 321, 0}, tok2.encode("a<|endoftext|>b!"));
        assertArrayEquals(new int[] {BOS, 343}, tok1.encode("<|startoftext|>x"));
        // Not an added token (case-sensitive), but lower-cased and matched by CLIP's pattern, whose BPE cache
        // maps it to itself.
        assertArrayEquals(new int[] {BOS, 343}, tok1.encode("<|STARTOFTEXT|>x"));
    }

    // ------------------------------------------------------------------------------------------ lengths

    @Test
    void longPromptsAreTruncatedTo75TokensPlusStartAndEnd() {
        String prompt = String.join(" ", java.util.Collections.nCopies(100, "cat"));
        long[] ids = tok1.inputIds(prompt);
        assertEquals(77, ids.length);
        assertEquals(BOS, ids[0]);
        for (int i = 1; i <= 75; i++) {
            assertEquals(2368, ids[i]);
        }
        assertEquals(EOS, ids[76]);
        long[] ids2 = tok2.inputIds(prompt);
        assertEquals(EOS, ids2[76]);
        assertEquals(102, tok1.untruncated(prompt).length);

        String exactly75 = String.join(" ", java.util.Collections.nCopies(75, "cat"));
        assertEquals(EOS, tok2.inputIds(exactly75)[76]);
        assertEquals(2368, tok2.inputIds(exactly75)[75]);
        String seventyFour = String.join(" ", java.util.Collections.nCopies(74, "cat"));
        assertEquals(EOS, tok2.inputIds(seventyFour)[75]);
        assertEquals(0, tok2.inputIds(seventyFour)[76]);
    }

    @Test
    void customMaxLength() {
        assertArrayEquals(new long[] {BOS, 320, 1125, EOS}, tok1.inputIds("a photo of a cat", 4));
        assertArrayEquals(new long[] {BOS, EOS}, tok1.inputIds("a photo of a cat", 2));
        assertArrayEquals(new long[] {BOS, 320, 1125, 539, 320, 2368, EOS, 0, 0, 0}, tok2.inputIds("a photo of a cat", 10));
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> tok1.inputIds("a", 1));
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> tok1.inputIds("a", -5));
    }

    // ------------------------------------------------------------------------------------------ threads

    @Test
    void concurrentEncodingGivesTheSameIds() throws Exception {
        ClipTokenizer fresh = ClipTokenizer.load(folder2); // empty cache: threads race to fill it
        Random random = new Random(7);
        String[] words = {"cat", "dog", "photorealistic", "masterpiece", "!!", "東京", "🫠", "3.14", "don't", "ΟΔΟΣ",
            "café", "lighting", "volumetric", "<|endoftext|>", "&amp;", "rutkowski", "unbelievably", "x"};
        List<String> prompts = new ArrayList<>();
        for (int i = 0; i < 400; i++) {
            StringBuilder sb = new StringBuilder();
            for (int w = random.nextInt(30); w >= 0; w--) {
                sb.append(words[random.nextInt(words.length)]).append(random.nextBoolean() ? " " : ", ");
            }
            prompts.add(sb.toString());
        }
        List<long[]> expected = new ArrayList<>();
        for (String p : prompts) {
            expected.add(tok2.inputIds(p));
        }
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                int offset = t * 37;
                results.add(pool.submit(() -> IntStream.range(0, prompts.size())
                        .map(i -> (i + offset) % prompts.size())
                        .allMatch(i -> Arrays.equals(expected.get(i), fresh.inputIds(prompts.get(i))))));
            }
            for (Future<Boolean> r : results) {
                assertTrue(r.get());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    // ------------------------------------------------------------------------------------------- errors

    @Test
    void nullArguments() {
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> tok1.encode(null));
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> tok1.inputIds(null));
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> tok1.inputIds(null, 77));
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> tok1.untruncated(null));
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> tok1.tokenize(null));
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> ClipTokenizer.load(null));
    }

    @Test
    void missingFolderOrFiles(@TempDir Path tmp) throws IOException {
        assertMessage(ErrorCode.NOT_FOUND, "nope", () -> ClipTokenizer.load(tmp.resolve("nope")));
        for (String file : List.of("vocab.json", "merges.txt", "tokenizer_config.json")) {
            Path dir = copy(folder1, tmp.resolve("without-" + file));
            Files.delete(dir.resolve(file));
            assertMessage(ErrorCode.NOT_FOUND, file, () -> ClipTokenizer.load(dir));
        }
    }

    @Test
    void specialTokensMapIsOptional(@TempDir Path tmp) throws IOException {
        Path dir = copy(folder2, tmp.resolve("t2"));
        Files.delete(dir.resolve("special_tokens_map.json"));
        ClipTokenizer t = ClipTokenizer.load(dir);
        assertEquals(0, t.padId(), "pad_token \"!\" from tokenizer_config.json");
        assertArrayEquals(tok2.inputIds("wow!!"), t.inputIds("wow!!"));
    }

    @Test
    void specialTokenMissingFromTheVocabGetsTheNextId(@TempDir Path tmp) throws IOException {
        Path dir = copy(folder1, tmp.resolve("pad"));
        String config = Files.readString(dir.resolve("tokenizer_config.json"))
                .replace("\"pad_token\": \"<|endoftext|>\"", "\"pad_token\": \"<|pad|>\"");
        Files.writeString(dir.resolve("tokenizer_config.json"), config);
        Files.delete(dir.resolve("special_tokens_map.json"));
        ClipTokenizer t = ClipTokenizer.load(dir);
        assertEquals(49408, t.padId());
        assertArrayEquals(new int[] {320, 49408, 2368}, t.encode("a<|pad|>cat"));
    }

    @Test
    void corruptFiles(@TempDir Path tmp) throws IOException {
        corrupt(tmp, "vocab.json", "{\"a\": 1, \"b\": ".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "vocab.json", "{\"a\": \"1\"}".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "vocab.json", "{\"a\": -1}".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "vocab.json", "{\"a\": 1.5}".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "vocab.json", "[1, 2]".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "vocab.json", "{}".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "vocab.json", new byte[] {'{', '"', (byte) 0xff, '"', ':', '1', '}'});
        corrupt(tmp, "merges.txt", "#version: 0.2\n".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "merges.txt", new byte[] {'#', '\n', 'a', ' ', (byte) 0xc3});
        corrupt(tmp, "tokenizer_config.json", "{ not json".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "tokenizer_config.json", "[]".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "tokenizer_config.json", "{\"sep_token\": 5}".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "tokenizer_config.json", "{\"model_max_length\": \"77\"}".getBytes(StandardCharsets.UTF_8));
        corrupt(tmp, "special_tokens_map.json", "{\"pad_token\": {\"lstrip\": true}}".getBytes(StandardCharsets.UTF_8));
    }

    private static int corruptCount;

    private static void corrupt(Path tmp, String file, byte[] content) throws IOException {
        Path dir = copy(folder1, tmp.resolve("corrupt" + corruptCount++));
        Files.write(dir.resolve(file), content);
        assertMessage(ErrorCode.BAD_MODEL_FILE, file, () -> ClipTokenizer.load(dir));
    }

    private static Path copy(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (var files = Files.list(from)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
        }
        return to;
    }

    private static void assertCode(ErrorCode code, Executable call) {
        SdxlException e = assertThrows(SdxlException.class, call);
        assertEquals(code, e.code(), e.getMessage());
    }

    private static void assertMessage(ErrorCode code, String mention, Executable call) {
        SdxlException e = assertThrows(SdxlException.class, call);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(mention), "message should name " + mention + ": " + e.getMessage());
    }
}
