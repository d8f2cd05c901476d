package io.sdxl4j.text;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * The prompt-weighting syntax of AUTOMATIC1111's stable-diffusion-webui, as an alternative to {@link Compel}'s:
 * what people paste from A1111 (and, for the forms below, from ComfyUI). It reproduces A1111's
 * {@code modules/prompt_parser.py: parse_prompt_attention} (the current {@code re_attention}, which allows spaces
 * around a weight) and the chunking of {@code modules/sd_hijack_clip.py: tokenize_line} / {@code process_tokens}
 * with the default settings (emphasis "Original", {@code comma_padding_backtrack = 20}).
 *
 * <h2>Syntax ({@link #parse})</h2>
 * <ul>
 *   <li>{@code (text)} multiplies the weight of text by 1.1; {@code ((text))} by 1.1 × 1.1 = 1.2100000000000002
 *       (products are computed in double, in A1111's order, so the values equal Python's bit for bit);</li>
 *   <li>{@code [text]} multiplies by {@code 1 / 1.1} = 0.9090909090909091;</li>
 *   <li>{@code (text:1.5)} multiplies by 1.5 instead of 1.1; spaces may surround the number ({@code (text: 1.5 )}),
 *       which is {@code [+-]?[.\d]+} with Unicode decimal digits; nesting multiplies:
 *       {@code (a (b:2) c:0.5)} gives a 0.5, b 1.0, c 0.5;</li>
 *   <li>{@code \(}, {@code \)}, {@code \[}, {@code \]} and {@code \\} are the literal characters; a backslash before
 *       any other character is dropped (A1111's regex matches it alone and keeps what follows it);</li>
 *   <li>{@code BREAK} — upper case, as a word of its own (word boundaries as Python's {@code \b}, spaces around it
 *       removed) — ends the current 75-token chunk; see {@link WeightedText#isBreak()};</li>
 *   <li>adjacent fragments with the same weight are merged; an empty prompt is one fragment ("", 1.0).</li>
 * </ul>
 *
 * <h2>Bad syntax, as A1111 handles it</h2>
 * <ul>
 *   <li>an unclosed {@code (} or {@code [} applies its multiplier to everything after it, to the end of the
 *       prompt: {@code (a b} is "a b" at 1.1; a {@code )} or {@code ]} with nothing open is literal text;</li>
 *   <li>{@code (word:abc)} — the weight is not of the form {@code [+-]?[.\d]+}: the colon and "abc" are literal
 *       text and the brackets are plain emphasis: "word:abc" at 1.1;</li>
 *   <li>the one case where A1111 itself fails (a Python {@code ValueError}) is a weight that matches
 *       {@code [+-]?[.\d]+} but is no number, such as {@code (a:1.2.3)} or {@code (a:.)}, inside an open bracket:
 *       {@link #parse} rejects it with {@link SdxlException} {@link ErrorCode#INVALID_ARGUMENT} and a message
 *       saying where (outside any bracket, {@code a:1.2.3)} is literal text, as in A1111);</li>
 *   <li>a {@code BREAK} inside brackets has its marker weight multiplied, so A1111 no longer recognises it and
 *       feeds the word "BREAK" to CLIP with a negative weight ({@code (BREAK)} → -1.1); reproduced as is.</li>
 * </ul>
 *
 * <h2>ComfyUI</h2>
 * ComfyUI's {@code (text)}, {@code ((text))}, {@code (text:1.5)}, {@code \(}/{@code \)} and unclosed-bracket
 * behaviour give the same weights for ordinary prompts, but it differs in: {@code [text]} is literal text there
 * (no down-weighting), and A1111's {@code [a:b:0.5]} / {@code [a|b]} prompt editing is ComfyUI's dynamic-prompt
 * syntax instead; {@code BREAK} is plain text in ComfyUI's core (ConditioningConcat does that job); a bad weight
 * such as {@code (a:1.2.3)} is taken literally rather than rejected. ComfyUI's {@code embedding:name} textual
 * inversion references and A1111's bare embedding names are rewritten to the loaded embedding's tokens before this
 * parser runs ({@link EmbeddingReferences}); this class itself sees them as plain text.
 * ComfyUI also pads and weights differently (it interpolates towards the empty prompt's encoding rather than
 * scaling), so only the parse, not {@link #applyEmphasis}, carries over.
 *
 * <h2>Chunks and applying the weights</h2>
 * {@link #chunks} tokenizes each fragment on its own and lays the tokens out 75 at a time: each {@link Chunk} is
 * start token, 75 tokens (the unused tail padded), end token = 77 ids, with each prompt token's weight and 1.0
 * for the start, end and padding positions. A1111 encodes every chunk separately with CLIP and concatenates the
 * hidden states along the sequence (77, 154, ... tokens; for SDXL each text encoder with its own tokenizer, the
 * pooled output taken from the first chunk, before weighting). The weights are applied to the encoder's output:
 * every token's hidden-state vector is multiplied by its weight, then the whole chunk is rescaled so the mean of
 * all its values equals the unweighted mean ({@link #applyEmphasis}).
 */
public final class A1111Prompt {
    /** Prompt tokens per chunk (A1111's {@code chunk_length}); a chunk has these plus start and end token. */
    public static final int CHUNK_TOKENS = 75;
    /** A1111's default {@code comma_padding_backtrack}: how far back a full chunk looks for a comma to split at. */
    public static final int COMMA_PADDING_BACKTRACK = 20;

    private static final double ROUND = 1.1;
    private static final double SQUARE = 1 / 1.1;
    private static final String BREAK = "BREAK";

    private A1111Prompt() {}

    /**
     * A piece of prompt text with its weight. A1111 marks a {@code BREAK} with the text "BREAK" and weight -1
     * (see {@link #isBreak()}); those two values are kept so that every quirk of its merging reproduces.
     */
    public record WeightedText(String text, double weight) {
        public WeightedText {
            Objects.requireNonNull(text, "text");
        }

        /** Whether this is a chunk break (A1111's {@code text == 'BREAK' and weight == -1}). */
        public boolean isBreak() {
            return weight == -1 && text.equals(BREAK);
        }
    }

    /**
     * One 77-token chunk: ids (start, prompt tokens, end, padding) and a weight per id.
     * The arrays are the record's own; do not modify them.
     */
    public record Chunk(long[] ids, float[] weights) {
        public Chunk {
            if (ids.length != weights.length) {
                throw new IllegalArgumentException(ids.length + " ids but " + weights.length + " weights");
            }
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Chunk c && Arrays.equals(ids, c.ids) && Arrays.equals(weights, c.weights);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(ids) + Arrays.hashCode(weights);
        }

        @Override
        public String toString() {
            return "Chunk[ids=" + Arrays.toString(ids) + ", weights=" + Arrays.toString(weights) + "]";
        }
    }

    // ------------------------------------------------------------------------------------------------ parsing

    /** A1111's {@code res} entry: mutable while brackets multiply it. */
    private static final class Frag {
        String text;
        double weight;

        Frag(String text, double weight) {
            this.text = text;
            this.weight = weight;
        }
    }

    /**
     * The prompt's fragments and weights, as A1111's {@code parse_prompt_attention(prompt)}.
     *
     * @throws SdxlException INVALID_ARGUMENT if prompt is null, or for a bracket weight that is no number
     *     ({@code (a:1.2.3)}), where A1111 raises a ValueError
     */
    public static List<WeightedText> parse(String prompt) {
        if (prompt == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "prompt is null (use \"\" for an empty prompt)");
        }
        List<Frag> res = new ArrayList<>();
        List<Integer> round = new ArrayList<>();
        List<Integer> square = new ArrayList<>();
        int n = prompt.length();
        int i = 0;
        while (i < n) {
            char c = prompt.charAt(i);
            if (c == '\\') {
                // \( \) \[ \] \\ give the character; a lone backslash gives "" (the next character is read on its own)
                if (i + 1 < n && "()[]\\".indexOf(prompt.charAt(i + 1)) >= 0) {
                    res.add(new Frag(String.valueOf(prompt.charAt(i + 1)), 1.0));
                    i += 2;
                } else {
                    res.add(new Frag("", 1.0));
                    i += 1;
                }
            } else if (c == '(') {
                round.add(res.size());
                i++;
            } else if (c == '[') {
                square.add(res.size());
                i++;
            } else if (c == ':') {
                int[] w = weightSpan(prompt, i);
                if (w != null && !round.isEmpty()) {
                    double weight = pythonFloat(prompt, w[0], w[1], i);
                    multiply(res, round.remove(round.size() - 1), weight);
                    i = w[2];
                } else if (w != null) {
                    addText(res, prompt.substring(i, w[2])); // ":1.5)" with nothing open: literal text
                    i = w[2];
                } else {
                    addText(res, ":");
                    i++;
                }
            } else if (c == ')' && !round.isEmpty()) {
                multiply(res, round.remove(round.size() - 1), ROUND);
                i++;
            } else if (c == ']' && !square.isEmpty()) {
                multiply(res, square.remove(square.size() - 1), SQUARE);
                i++;
            } else if (c == ')' || c == ']') {
                addText(res, String.valueOf(c));
                i++;
            } else {
                int end = i + 1;
                while (end < n && "\\()[]:".indexOf(prompt.charAt(end)) < 0) {
                    end++;
                }
                addText(res, prompt.substring(i, end));
                i = end;
            }
        }
        for (int pos : round) {
            multiply(res, pos, ROUND);
        }
        for (int pos : square) {
            multiply(res, pos, SQUARE);
        }
        if (res.isEmpty()) {
            res.add(new Frag("", 1.0));
        }
        int k = 0;
        while (k + 1 < res.size()) {
            if (res.get(k).weight == res.get(k + 1).weight) {
                res.get(k).text += res.remove(k + 1).text;
            } else {
                k++;
            }
        }
        List<WeightedText> out = new ArrayList<>(res.size());
        for (Frag f : res) {
            out.add(new WeightedText(f.text, f.weight));
        }
        return Collections.unmodifiableList(out);
    }

    private static void multiply(List<Frag> res, int from, double multiplier) {
        for (int p = from; p < res.size(); p++) {
            res.get(p).weight *= multiplier;
        }
    }

    /**
     * Matches {@code :\s*([+-]?[.\d]+)\s*\)} at {@code colon}: {number start, number end, match end}, or null.
     * {@code \s} and {@code \d} as Python's for str (str.isspace(), Unicode category Nd).
     */
    private static int[] weightSpan(String s, int colon) {
        int n = s.length();
        int j = colon + 1;
        while (j < n && PythonText.isSpace(s.codePointAt(j))) {
            j += Character.charCount(s.codePointAt(j));
        }
        int start = j;
        if (j < n && (s.charAt(j) == '+' || s.charAt(j) == '-')) {
            j++;
        }
        int digitsFrom = j;
        while (j < n && (s.charAt(j) == '.' || Character.getType(s.codePointAt(j)) == Character.DECIMAL_DIGIT_NUMBER)) {
            j += Character.charCount(s.codePointAt(j));
        }
        if (j == digitsFrom) {
            return null;
        }
        int end = j;
        while (j < n && PythonText.isSpace(s.codePointAt(j))) {
            j += Character.charCount(s.codePointAt(j));
        }
        if (j < n && s.charAt(j) == ')') {
            return new int[] {start, end, j + 1};
        }
        return null;
    }

    /** Python's {@code float()} of a {@code [+-]?[.\d]+} string (any Unicode decimal digits), or a clear error. */
    private static double pythonFloat(String s, int from, int to, int colon) {
        StringBuilder ascii = new StringBuilder(to - from);
        int dots = 0;
        int digits = 0;
        for (int j = from; j < to; j += Character.charCount(s.codePointAt(j))) {
            int cp = s.codePointAt(j);
            if (cp == '.' || cp == '+' || cp == '-') {
                dots += cp == '.' ? 1 : 0;
                ascii.append((char) cp);
            } else {
                ascii.append((char) ('0' + Character.digit(cp, 10)));
                digits++;
            }
        }
        if (digits == 0 || dots > 1) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "prompt weight \"" + s.substring(from, to)
                    + "\" (after the ':' at character " + colon + ") is not a number; A1111 syntax is (text:1.2),"
                    + " and \\( \\) write literal parentheses");
        }
        return Double.parseDouble(ascii.toString());
    }

    /** A1111's {@code re.split(re_break, text)}: the parts, with a BREAK marker (-1) between two parts. */
    private static void addText(List<Frag> res, String text) {
        int from = 0;
        int search = 0;
        while (true) {
            int b = text.indexOf(BREAK, search);
            if (b < 0) {
                break;
            }
            int after = b + BREAK.length();
            boolean boundedLeft = b == 0 || !isWord(text.codePointBefore(b));
            boolean boundedRight = after == text.length() || !isWord(text.codePointAt(after));
            if (!boundedLeft || !boundedRight) {
                search = b + 1;
                continue;
            }
            int start = b;
            while (start > from && PythonText.isSpace(text.codePointBefore(start))) {
                start -= Character.charCount(text.codePointBefore(start));
            }
            int end = after;
            while (end < text.length() && PythonText.isSpace(text.codePointAt(end))) {
                end += Character.charCount(text.codePointAt(end));
            }
            res.add(new Frag(text.substring(from, start), 1.0));
            res.add(new Frag(BREAK, -1));
            from = end;
            search = end;
        }
        res.add(new Frag(text.substring(from), 1.0));
    }

    /** Python's {@code \w} for str: alphanumeric (str.isalnum()) or underscore. */
    private static boolean isWord(int cp) {
        if (cp == '_' || Character.isLetter(cp)) {
            return true;
        }
        int t = Character.getType(cp);
        return t == Character.DECIMAL_DIGIT_NUMBER || t == Character.LETTER_NUMBER || t == Character.OTHER_NUMBER;
    }

    // ------------------------------------------------------------------------------------------------ chunks

    /** {@link #chunks(String, ClipTokenizer, int)} with A1111's default comma backtrack of 20 tokens. */
    public static List<Chunk> chunks(String prompt, ClipTokenizer tok) {
        return chunks(prompt, tok, COMMA_PADDING_BACKTRACK);
    }

    /**
     * The prompt as A1111 feeds it to one CLIP text encoder: {@link #parse}, each fragment tokenized on its own
     * ({@link ClipTokenizer#encode}), tokens laid out {@value #CHUNK_TOKENS} to a chunk with their fragment's
     * weight. A {@code BREAK} closes the current chunk (an empty chunk too, for a leading BREAK). When a chunk is
     * full and the next token is not a comma, and a comma lies within the chunk's last {@code commaBacktrack}
     * tokens, the tokens after that comma move to the next chunk. Each chunk is then start token + tokens + end
     * token, the tail filled with the end token and, where the tokenizer's pad id differs (SDXL's tokenizer_2),
     * every id after the first end token set to the pad id — as A1111's {@code process_tokens}. Start, end and
     * padding have weight 1.0. Always at least one chunk.
     *
     * @param commaBacktrack A1111's {@code comma_padding_backtrack} setting; 0 turns the comma rule off
     */
    public static List<Chunk> chunks(String prompt, ClipTokenizer tok, int commaBacktrack) {
        Objects.requireNonNull(tok, "tok");
        if (commaBacktrack < 0 || commaBacktrack > CHUNK_TOKENS) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                    "commaBacktrack must be between 0 and " + CHUNK_TOKENS + ", got " + commaBacktrack);
        }
        int[] commaIds = tok.encode(",");
        int comma = commaIds.length == 1 ? commaIds[0] : Integer.MIN_VALUE;

        ChunkBuilder b = new ChunkBuilder(tok);
        for (WeightedText part : parse(prompt)) {
            if (part.isBreak()) {
                b.next();
                continue;
            }
            float weight = (float) part.weight();
            for (int token : tok.encode(part.text())) {
                if (token == comma) {
                    b.lastComma = b.size;
                } else if (commaBacktrack != 0 && b.size == CHUNK_TOKENS && b.lastComma != -1
                        && b.size - b.lastComma <= commaBacktrack) {
                    int cut = b.lastComma + 1;
                    int[] movedIds = Arrays.copyOfRange(b.ids, cut, b.size);
                    float[] movedWeights = Arrays.copyOfRange(b.weights, cut, b.size);
                    b.size = cut;
                    b.next();
                    System.arraycopy(movedIds, 0, b.ids, 0, movedIds.length);
                    System.arraycopy(movedWeights, 0, b.weights, 0, movedWeights.length);
                    b.size = movedIds.length;
                }
                if (b.size == CHUNK_TOKENS) {
                    b.next();
                }
                b.ids[b.size] = token;
                b.weights[b.size] = weight;
                b.size++;
            }
        }
        if (b.size > 0 || b.out.isEmpty()) {
            b.next();
        }
        return Collections.unmodifiableList(b.out);
    }

    /** A1111's current {@code PromptChunk} and {@code next_chunk()}. */
    private static final class ChunkBuilder {
        final List<Chunk> out = new ArrayList<>();
        final int[] ids = new int[CHUNK_TOKENS];
        final float[] weights = new float[CHUNK_TOKENS];
        final ClipTokenizer tok;
        int size;
        int lastComma = -1;

        ChunkBuilder(ClipTokenizer tok) {
            this.tok = tok;
        }

        void next() {
            long[] chunkIds = new long[CHUNK_TOKENS + 2];
            float[] chunkWeights = new float[CHUNK_TOKENS + 2];
            Arrays.fill(chunkIds, tok.eosId());
            Arrays.fill(chunkWeights, 1.0f);
            chunkIds[0] = tok.bosId();
            for (int k = 0; k < size; k++) {
                chunkIds[1 + k] = ids[k];
                chunkWeights[1 + k] = weights[k];
            }
            if (tok.padId() != tok.eosId()) {
                int firstEnd = 0;
                while (chunkIds[firstEnd] != tok.eosId()) {
                    firstEnd++;
                }
                Arrays.fill(chunkIds, firstEnd + 1, chunkIds.length, tok.padId());
            }
            out.add(new Chunk(chunkIds, chunkWeights));
            size = 0;
            lastComma = -1;
        }
    }

    // ------------------------------------------------------------------------------------------------ emphasis

    /**
     * A1111's emphasis on one chunk's encoder output, in place: {@code hidden} is [weights.length, dim] row-major
     * (the text encoder's hidden states for the chunk); each token's row is multiplied by its weight, then, when
     * {@code restoreMean} (emphasis "Original", A1111's default), everything is multiplied by
     * {@code mean(before) / mean(after)} so the chunk keeps its unweighted mean. {@code restoreMean = false} is
     * A1111's "No norm" option. Means are summed in double (torch sums float32), so results agree with A1111 to
     * float rounding. As in A1111, weights that bring the mean to 0 give infinities or NaN.
     */
    public static void applyEmphasis(float[] hidden, float[] weights, int dim, boolean restoreMean) {
        if (dim <= 0 || hidden.length != (long) weights.length * dim) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "hidden has " + hidden.length + " values, expected "
                    + weights.length + " tokens x " + dim);
        }
        double before = 0;
        double after = 0;
        for (int t = 0; t < weights.length; t++) {
            for (int d = t * dim, end = d + dim; d < end; d++) {
                before += hidden[d];
                hidden[d] *= weights[t];
                after += hidden[d];
            }
        }
        if (restoreMean) {
            float scale = (float) ((before / hidden.length) / (after / hidden.length));
            for (int d = 0; d < hidden.length; d++) {
                hidden[d] *= scale;
            }
        }
    }
}
