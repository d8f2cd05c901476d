package io.sdxl4j.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * CLIP's BPE tokenizer, reproducing transformers 4.44's slow {@code CLIPTokenizer} (the class SDXL's
 * {@code model_index.json} names for {@code tokenizer} and {@code tokenizer_2}) without ftfy installed, token for
 * token. Loaded from a diffusers tokenizer folder: {@code vocab.json}, {@code merges.txt},
 * {@code tokenizer_config.json} and, when present, {@code special_tokens_map.json} (and the legacy
 * {@code added_tokens.json}).
 *
 * <p>{@link #encode} works as transformers' {@code tokenize} + {@code convert_tokens_to_ids}:
 * <ol>
 *   <li>the raw prompt is cut around every added/special token, case-sensitively: {@code <|startoftext|>},
 *       {@code <|endoftext|>}, and for SDXL's tokenizer_2 also its pad token "!", so every "!" in a prompt is
 *       id 0 there (tokenizer gives "!" the BPE id 256, "!!" 748 ...);</li>
 *   <li>each other piece is cleaned as {@code BasicTokenizer(strip_accents=False, do_split_on_punc=False)} does
 *       (control characters dropped, white space collapsed, CJK ideographs spaced, NFC, lower-cased;
 *       HTML entities stay, accents stay) — see {@link TextCleaner};</li>
 *   <li>split by CLIP's pattern (letters runs, single digits, runs of other symbols, English contractions) —
 *       see {@link ClipPattern};</li>
 *   <li>each part's UTF-8 bytes go through byte-level BPE with the {@code </w>} end-of-word marker — see
 *       {@link BytePairEncoder}; results are cached per part.</li>
 * </ol>
 * {@link #inputIds} is {@code tok(prompt, padding="max_length", max_length=77, truncation=True).input_ids},
 * exactly as the SDXL pipelines call it; {@link #untruncated} is the same with {@code padding="longest"}.
 *
 * <p>Instances are immutable and safe to use from many threads at once.
 *
 * <p>Character categories and case mappings are those of Unicode 14.0, the version of Python 3.11 that made the
 * reference data ({@link UnicodeTables}), not the running JDK's: the ids do not change with the JDK (JDK 17 alone
 * would drop the emoji added in Unicode 14.0). Only NFC normalisation uses the JDK's tables.
 */
public final class ClipTokenizer {
    static final String START_OF_TEXT = "<|startoftext|>";
    static final String END_OF_TEXT = "<|endoftext|>";

    /** Used when tokenizer_config.json has no model_max_length: CLIP's 77 text positions. */
    public static final int DEFAULT_MODEL_MAX_LENGTH = 77;

    private static final String[] SPECIAL_ATTRIBUTES = {
        "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
    };
    private static final int MAX_SEQUENCE = 1 << 24;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path folder;
    private final Map<String, Integer> vocab;
    private final AddedTokens added;
    private final BytePairEncoder bpe;
    private final String bosToken;
    private final String eosToken;
    private final String padToken;
    private final String unkToken;
    private final int bosId;
    private final int eosId;
    private final int padId;
    private final int unkId;
    private final int modelMaxLength;

    private ClipTokenizer(Path folder, Map<String, Integer> vocab, AddedTokens added, String mergesText, Path mergesFile,
                          Map<String, String> special, int modelMaxLength) {
        this.folder = folder;
        this.vocab = vocab;
        this.added = added;
        this.bosToken = special.get("bos_token");
        this.eosToken = special.get("eos_token");
        this.padToken = special.get("pad_token");
        this.unkToken = special.get("unk_token");
        Integer unkInVocab = vocab.get(unkToken);
        this.unkId = unkInVocab != null ? unkInVocab : added.get(unkToken).id();
        this.bosId = tokenId(bosToken);
        this.eosId = tokenId(eosToken);
        this.padId = tokenId(padToken);
        this.modelMaxLength = modelMaxLength;
        this.bpe = BytePairEncoder.fromMerges(mergesText, this::tokenId);
        if (bpe == null || bpe.mergeCount() == 0) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, mergesFile + ": no merges after the \"#version\" line");
        }
    }

    /** A copy with other added tokens; the vocabulary and merges (and their caches) are shared. */
    private ClipTokenizer(ClipTokenizer base, AddedTokens added) {
        this.folder = base.folder;
        this.vocab = base.vocab;
        this.added = added;
        this.bpe = base.bpe;
        this.bosToken = base.bosToken;
        this.eosToken = base.eosToken;
        this.padToken = base.padToken;
        this.unkToken = base.unkToken;
        this.bosId = base.bosId;
        this.eosId = base.eosId;
        this.padId = base.padId;
        this.unkId = base.unkId;
        this.modelMaxLength = base.modelMaxLength;
    }

    /**
     * transformers' {@code tokenizer.add_tokens(tokens)} as diffusers' {@code load_textual_inversion} calls it: a
     * new tokenizer where each token is a plain (non-special, no strip) added token, with the ids
     * {@link #size()}, {@link #size()} + 1, ... in order. Like every added token it is matched in the raw text
     * before clean-up, case-sensitively, longest first. This tokenizer is unchanged.
     *
     * @throws SdxlException INVALID_ARGUMENT if a token is null, empty, repeated, or already in the vocabulary or
     *     the added tokens (diffusers refuses those too: the new embedding would never be used)
     */
    public ClipTokenizer withAddedTokens(List<String> tokens) {
        Map<String, AddedTokens.Token> all = new LinkedHashMap<>(added.all());
        int next = size();
        for (String t : tokens) {
            if (t == null || t.isEmpty()) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "an added token must be a non-empty string");
            }
            if (vocab.containsKey(t) || all.containsKey(t)) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "token \"" + t + "\" is already in the tokenizer's "
                        + "vocabulary; choose another token name (or unload the embedding that added it)");
            }
            all.put(t, new AddedTokens.Token(t, next++, false, false, false, false));
        }
        return new ClipTokenizer(this, new AddedTokens(all));
    }

    /**
     * transformers' {@code len(tokenizer)}: the vocabulary plus the added tokens outside it (49,408 for SDXL's
     * tokenizers); the id the next added token gets.
     */
    public int size() {
        int n = vocab.size();
        for (String c : added.all().keySet()) {
            if (!vocab.containsKey(c)) {
                n++;
            }
        }
        return n;
    }

    /** Whether {@code token} is one of the added tokens (special tokens included), as {@code added_tokens_encoder}. */
    public boolean isAddedToken(String token) {
        return added.get(token) != null;
    }

    // ------------------------------------------------------------------------------------------------ loading

    /**
     * Loads a tokenizer folder (diffusers' {@code tokenizer/} or {@code tokenizer_2/}).
     *
     * @throws SdxlException NOT_FOUND if the folder, vocab.json, merges.txt or tokenizer_config.json is missing or
     *     unreadable; BAD_MODEL_FILE (naming the file) if one of them is malformed; INVALID_ARGUMENT for a null path
     */
    public static ClipTokenizer load(Path folder) {
        if (folder == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "tokenizer folder is null");
        }
        if (!Files.isDirectory(folder)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, folder + ": tokenizer folder does not exist");
        }
        Path vocabFile = folder.resolve("vocab.json");
        Path mergesFile = folder.resolve("merges.txt");
        Path configFile = folder.resolve("tokenizer_config.json");
        Path specialFile = folder.resolve("special_tokens_map.json");
        Path addedFile = folder.resolve("added_tokens.json");

        Map<String, Integer> vocab = readVocab(vocabFile);
        String merges = readText(mergesFile);
        JsonNode config = readObject(configFile);
        JsonNode specialMap = Files.exists(specialFile) ? readObject(specialFile) : null;
        JsonNode addedJson = Files.exists(addedFile) ? readObject(addedFile) : null;

        // Special tokens: tokenizer_config.json, overridden by special_tokens_map.json (transformers'
        // from_pretrained), defaulting to CLIPTokenizer's constructor arguments.
        Map<String, TokenSpec> specials = new LinkedHashMap<>();
        for (String attr : SPECIAL_ATTRIBUTES) {
            JsonNode v = specialMap != null && present(specialMap.get(attr)) ? specialMap.get(attr) : config.get(attr);
            Path from = specialMap != null && present(specialMap.get(attr)) ? specialFile : configFile;
            TokenSpec spec = present(v) ? TokenSpec.parse(v, from, attr) : TokenSpec.clipDefault(attr);
            if (spec != null && spec.content.isEmpty() && TokenSpec.clipDefault(attr) != null) {
                throw bad(from, "\"" + attr + "\" is empty");
            }
            if (spec != null) {
                specials.put(attr, spec);
            }
        }
        List<TokenSpec> additional = new ArrayList<>();
        JsonNode extra = specialMap != null && present(specialMap.get("additional_special_tokens"))
                ? specialMap.get("additional_special_tokens") : config.get("additional_special_tokens");
        Path extraFrom = specialMap != null && present(specialMap.get("additional_special_tokens")) ? specialFile : configFile;
        if (present(extra)) {
            if (!extra.isArray()) {
                throw bad(extraFrom, "\"additional_special_tokens\" must be a list, found " + extra);
            }
            for (JsonNode e : extra) {
                additional.add(TokenSpec.parse(e, extraFrom, "additional_special_tokens"));
            }
        }

        AddedTokens added = addedTokens(vocab, config, configFile, addedJson, addedFile, specials, additional);
        Map<String, String> contents = new HashMap<>();
        specials.forEach((k, v) -> contents.put(k, v.content));
        return new ClipTokenizer(folder, vocab, added, merges, mergesFile, contents,
                modelMaxLength(config, configFile));
    }

    /**
     * transformers 4.44: tokens listed in {@code added_tokens_decoder} (or, for older folders, added_tokens.json)
     * keep their ids; then every special token not yet added is added, with its vocab id when vocab.json has it,
     * else the next free id.
     */
    private static AddedTokens addedTokens(Map<String, Integer> vocab, JsonNode config, Path configFile, JsonNode addedJson,
                                           Path addedFile, Map<String, TokenSpec> specials, List<TokenSpec> additional) {
        Map<String, AddedTokens.Token> byContent = new LinkedHashMap<>();
        JsonNode decoder = config.get("added_tokens_decoder");
        if (present(decoder)) {
            if (!decoder.isObject()) {
                throw bad(configFile, "\"added_tokens_decoder\" must be an object, found " + decoder);
            }
            for (Map.Entry<String, JsonNode> e : iterable(decoder)) {
                int id = parseId(e.getKey(), configFile, "added_tokens_decoder");
                TokenSpec spec = TokenSpec.parse(e.getValue(), configFile, "added_tokens_decoder." + e.getKey());
                byContent.put(spec.content, spec.token(id));
            }
        } else if (addedJson != null) {
            for (Map.Entry<String, JsonNode> e : iterable(addedJson)) {
                JsonNode v = e.getValue();
                if (!v.isIntegralNumber() || v.asLong() < 0 || v.asLong() > Integer.MAX_VALUE) {
                    throw bad(addedFile, "\"" + e.getKey() + "\" must map to a non-negative integer id, found " + v);
                }
                boolean special = isSpecialContent(e.getKey(), specials, additional);
                byContent.put(e.getKey(), new AddedTokens.Token(e.getKey(), v.intValue(), false, false, false, special));
            }
        }
        List<TokenSpec> all = new ArrayList<>(specials.values());
        all.addAll(additional);
        int vocabAndAdded = vocab.size();
        for (String c : byContent.keySet()) {
            if (!vocab.containsKey(c)) {
                vocabAndAdded++;
            }
        }
        int next = vocabAndAdded;
        for (TokenSpec spec : all) {
            if (spec.content.isEmpty()) {
                continue;
            }
            AddedTokens.Token existing = byContent.get(spec.content);
            if (existing != null) {
                byContent.put(spec.content, spec.token(existing.id()));
                continue;
            }
            Integer id = vocab.get(spec.content);
            byContent.put(spec.content, spec.token(id != null ? id : next++));
        }
        return new AddedTokens(byContent);
    }

    private static boolean isSpecialContent(String content, Map<String, TokenSpec> specials, List<TokenSpec> additional) {
        for (TokenSpec s : specials.values()) {
            if (s.content.equals(content)) {
                return true;
            }
        }
        for (TokenSpec s : additional) {
            if (s.content.equals(content)) {
                return true;
            }
        }
        return false;
    }

    private static int modelMaxLength(JsonNode config, Path configFile) {
        JsonNode n = config.get("model_max_length");
        if (!present(n)) {
            return DEFAULT_MODEL_MAX_LENGTH;
        }
        if (!n.isNumber() || n.asDouble() < 2) {
            throw bad(configFile, "\"model_max_length\" must be a number >= 2, found " + n);
        }
        // transformers writes 1e30 ("VERY_LARGE_INTEGER") for "no limit".
        double v = n.asDouble();
        return v < Integer.MAX_VALUE && v == Math.rint(v) ? (int) v : Integer.MAX_VALUE;
    }

    /** One special/added token as written in the JSON files: a string, or an AddedToken object. */
    private static final class TokenSpec {
        final String content;
        final boolean lstrip;
        final boolean rstrip;
        final boolean singleWord;
        final boolean special;

        TokenSpec(String content, boolean lstrip, boolean rstrip, boolean singleWord, boolean special) {
            this.content = content;
            this.lstrip = lstrip;
            this.rstrip = rstrip;
            this.singleWord = singleWord;
            this.special = special;
        }

        AddedTokens.Token token(int id) {
            return new AddedTokens.Token(content, id, lstrip, rstrip, singleWord, special);
        }

        static TokenSpec clipDefault(String attr) {
            switch (attr) {
                case "bos_token":
                    return new TokenSpec(START_OF_TEXT, false, false, false, true);
                case "eos_token":
                case "unk_token":
                case "pad_token":
                    return new TokenSpec(END_OF_TEXT, false, false, false, true);
                default:
                    return null;
            }
        }

        static TokenSpec parse(JsonNode v, Path file, String key) {
            if (v.isTextual()) {
                return new TokenSpec(v.asText(), false, false, false, true);
            }
            if (v.isObject() && v.has("content") && v.get("content").isTextual()) {
                return new TokenSpec(v.get("content").asText(), flag(v, "lstrip", file, key), flag(v, "rstrip", file, key),
                        flag(v, "single_word", file, key), !v.has("special") || flag(v, "special", file, key));
            }
            throw bad(file, "\"" + key + "\" must be a string or an object with a string \"content\", found " + v);
        }

        private static boolean flag(JsonNode v, String name, Path file, String key) {
            JsonNode f = v.get(name);
            if (!present(f)) {
                return false;
            }
            if (!f.isBoolean()) {
                throw bad(file, "\"" + key + "." + name + "\" must be true or false, found " + f);
            }
            return f.asBoolean();
        }
    }

    private static Map<String, Integer> readVocab(Path file) {
        Map<String, Integer> vocab;
        try {
            vocab = VocabJson.parse(readText(file));
        } catch (VocabJson.Malformed e) {
            throw bad(file, "not a JSON object of token strings to ids: " + e.getMessage());
        }
        if (vocab.isEmpty()) {
            throw bad(file, "has no tokens");
        }
        return Collections.unmodifiableMap(vocab);
    }

    private static String readText(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException | AccessDeniedException e) {
            throw notFound(file, e);
        } catch (CharacterCodingException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": not valid UTF-8", e);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": cannot be read: " + e.getMessage(), e);
        }
    }

    private static JsonNode readObject(Path file) {
        try {
            JsonNode root = JSON.readTree(Files.readAllBytes(file));
            if (root == null || !root.isObject()) {
                throw bad(file, "must be a JSON object");
            }
            return root;
        } catch (NoSuchFileException | AccessDeniedException e) {
            throw notFound(file, e);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    private static Iterable<Map.Entry<String, JsonNode>> iterable(JsonNode object) {
        return object::fields;
    }

    private static int parseId(String key, Path file, String where) {
        try {
            int id = Integer.parseInt(key);
            if (id >= 0) {
                return id;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw bad(file, "\"" + where + "\" keys must be non-negative integer ids, found \"" + key + "\"");
    }

    private static boolean present(JsonNode n) {
        return n != null && !n.isNull();
    }

    private static SdxlException bad(Path file, String problem) {
        return new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": " + problem);
    }

    private static SdxlException notFound(Path file, IOException e) {
        return new SdxlException(ErrorCode.NOT_FOUND, file + " does not exist or cannot be read"
                + (e instanceof AccessDeniedException ? " (access denied)" : ""), e);
    }

    // ----------------------------------------------------------------------------------------------- encoding

    /** The id of one token string: an added token's id, else its vocab.json id, else the unknown token's id. */
    private int tokenId(String token) {
        AddedTokens.Token t = added.get(token);
        if (t != null) {
            return t.id();
        }
        Integer id = vocab.get(token);
        return id != null ? id : unkId;
    }

    /**
     * The token ids of {@code text}, without {@code <|startoftext|>} / {@code <|endoftext|>} around them and
     * without truncation: {@code tok(text, add_special_tokens=False).input_ids}.
     *
     * @throws SdxlException INVALID_ARGUMENT if text is null
     */
    public int[] encode(String text) {
        requireText(text);
        IntList out = new IntList(text.length() / 3 + 8);
        for (Object piece : added.split(text)) {
            if (piece instanceof AddedTokens.Token) {
                out.add(((AddedTokens.Token) piece).id());
            } else {
                ClipPattern.findAll(TextCleaner.clean((String) piece), word -> {
                    if (word.equals(START_OF_TEXT) || word.equals(END_OF_TEXT)) {
                        out.add(tokenId(word)); // transformers' BPE cache is seeded with these two, unchanged
                    } else {
                        bpe.encodeWord(word, out);
                    }
                });
            }
        }
        return out.toArray();
    }

    /**
     * The token strings of {@code text} as transformers' {@code tokenize} gives them (BPE symbols with
     * {@code </w>}, byte-level characters for non-ASCII text; added tokens as themselves). For diagnostics.
     */
    public List<String> tokenize(String text) {
        requireText(text);
        List<String> out = new ArrayList<>();
        for (Object piece : added.split(text)) {
            if (piece instanceof AddedTokens.Token) {
                out.add(((AddedTokens.Token) piece).content());
            } else {
                ClipPattern.findAll(TextCleaner.clean((String) piece), word -> {
                    if (word.equals(START_OF_TEXT) || word.equals(END_OF_TEXT)) {
                        out.add(word);
                    } else {
                        bpe.tokenizeWord(word, out);
                    }
                });
            }
        }
        return out;
    }

    /**
     * The ids the SDXL pipelines feed the text encoders: {@code tok(prompt, padding="max_length",
     * max_length=modelMaxLength(), truncation=True).input_ids} — start token, at most modelMaxLength() - 2 prompt
     * tokens, end token, then the pad token up to modelMaxLength() (77 for SDXL).
     */
    public long[] inputIds(String prompt) {
        if (modelMaxLength > MAX_SEQUENCE) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, folder
                    + ": tokenizer_config.json sets no usable model_max_length; call inputIds(prompt, maxLength)");
        }
        return inputIds(prompt, modelMaxLength);
    }

    /**
     * {@code tok(prompt, padding="max_length", max_length=maxLength, truncation=True).input_ids}: start token, the
     * first {@code maxLength - 2} prompt tokens, end token, padding with {@link #padId()}; always maxLength ids.
     *
     * @throws SdxlException INVALID_ARGUMENT if prompt is null or maxLength is below 2 (no room for the start and
     *     end tokens) or absurdly large
     */
    public long[] inputIds(String prompt, int maxLength) {
        requireText(prompt);
        if (maxLength < 2 || maxLength > MAX_SEQUENCE) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                    "maxLength must be between 2 and " + MAX_SEQUENCE + " (start + end token), got " + maxLength);
        }
        int[] ids = encode(prompt);
        int keep = Math.min(ids.length, maxLength - 2);
        long[] out = new long[maxLength];
        out[0] = bosId;
        for (int i = 0; i < keep; i++) {
            out[1 + i] = ids[i];
        }
        out[1 + keep] = eosId;
        Arrays.fill(out, keep + 2, maxLength, padId);
        return out;
    }

    /**
     * {@code tok(prompt, padding="longest").input_ids} for one prompt: start token, every prompt token, end
     * token; no truncation, no padding (longer than modelMaxLength() for long prompts).
     */
    public long[] untruncated(String prompt) {
        int[] ids = encode(prompt);
        long[] out = new long[ids.length + 2];
        out[0] = bosId;
        for (int i = 0; i < ids.length; i++) {
            out[1 + i] = ids[i];
        }
        out[ids.length + 1] = eosId;
        return out;
    }

    private static void requireText(String text) {
        if (text == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "prompt is null (use \"\" for an empty prompt)");
        }
    }

    // ---------------------------------------------------------------------------------------------- accessors

    /** The id of {@code <|startoftext|>} (49406 for SDXL). */
    public int bosId() {
        return bosId;
    }

    /** The id of {@code <|endoftext|>} (49407 for SDXL). */
    public int eosId() {
        return eosId;
    }

    /** The padding id: 49407 ({@code <|endoftext|>}) for SDXL's tokenizer, 0 ("!") for tokenizer_2. */
    public int padId() {
        return padId;
    }

    /** The id given to a BPE symbol that vocab.json lacks. */
    public int unkId() {
        return unkId;
    }

    public String bosToken() {
        return bosToken;
    }

    public String eosToken() {
        return eosToken;
    }

    public String padToken() {
        return padToken;
    }

    /** model_max_length of tokenizer_config.json (77 for SDXL); {@link Integer#MAX_VALUE} for "no limit". */
    public int modelMaxLength() {
        return modelMaxLength;
    }

    /** Entries of vocab.json (49,408 for CLIP), not counting added tokens outside it. */
    public int vocabSize() {
        return vocab.size();
    }

    /** The folder this tokenizer was loaded from. */
    public Path folder() {
        return folder;
    }

    @Override
    public String toString() {
        return "ClipTokenizer[" + folder + ", vocab " + vocab.size() + ", merges " + bpe.mergeCount() + ", pad \""
                + padToken + "\"=" + padId + ", max " + modelMaxLength + "]";
    }
}
