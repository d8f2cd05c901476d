package io.sdxl4j.text;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.ToIntFunction;

/**
 * CLIP's byte-level BPE: a pre-token's UTF-8 bytes become printable symbols ({@code bytes_to_unicode}), the last
 * one carrying the end-of-word marker {@code </w>}; then the adjacent pair with the lowest merge rank is merged
 * everywhere (left to right, without overlaps) until no ranked pair is left. Symbols are interned to ints at load
 * time, so a merge step is an array scan and one hash lookup per adjacent pair.
 *
 * <p>Immutable after construction except for the word cache, a {@link ConcurrentHashMap}: safe for concurrent use.
 */
final class BytePairEncoder {
    static final String END_OF_WORD = "</w>";

    /**
     * transformers' CLIPTokenizer keeps lines {@code [1 : 49152 - 256 - 2 + 1]} of merges.txt: line 0 (the
     * "#version" header) is always dropped, whatever it holds, and at most 48,894 merges are read.
     */
    static final int MAX_MERGES = 49152 - 256 - 2;

    /** Words longer than this (in UTF-8 bytes) are not cached; the cache stops growing at CACHE_LIMIT entries. */
    private static final int CACHE_MAX_WORD = 256;
    private static final int CACHE_LIMIT = 1 << 17;

    private static final char[] BYTE_TO_CHAR = bytesToUnicode();

    private final int[] byteSymbol = new int[256];
    private final int[] byteSymbolEndOfWord = new int[256];
    private final PairTable pairs;
    /** symbol id -> token id (added tokens first, then vocab.json, else the unknown token). */
    private final int[] symbolToken;
    private final String[] symbolNames;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    private BytePairEncoder(Map<String, Integer> symbolIds, List<String> names, PairTable pairs,
                            ToIntFunction<String> tokenId) {
        for (int b = 0; b < 256; b++) {
            String s = String.valueOf(BYTE_TO_CHAR[b]);
            byteSymbol[b] = symbolIds.get(s);
            byteSymbolEndOfWord[b] = symbolIds.get(s + END_OF_WORD);
        }
        this.pairs = pairs;
        this.symbolNames = names.toArray(new String[0]);
        this.symbolToken = new int[symbolNames.length];
        for (int i = 0; i < symbolNames.length; i++) {
            symbolToken[i] = tokenId.applyAsInt(symbolNames[i]);
        }
    }

    /**
     * Builds the merge table from the text of merges.txt, exactly as transformers reads it: the whole text is
     * stripped, split on "\n", line 0 dropped, the next {@link #MAX_MERGES} lines split on whitespace; a line that
     * does not give exactly two symbols takes a rank but can never match; a repeated pair keeps its later rank.
     *
     * @param tokenId maps a final symbol (e.g. "cat&lt;/w&gt;") to its id
     * @return the encoder, or null when the text has no line after the header (reported by the caller)
     */
    static BytePairEncoder fromMerges(String mergesText, ToIntFunction<String> tokenId) {
        String text = PythonText.strip(mergesText);
        Map<String, Integer> symbolIds = new HashMap<>(1 << 17);
        List<String> names = new ArrayList<>(1 << 16);
        for (int b = 0; b < 256; b++) {
            intern(symbolIds, names, String.valueOf(BYTE_TO_CHAR[b]));
        }
        for (int b = 0; b < 256; b++) {
            intern(symbolIds, names, BYTE_TO_CHAR[b] + END_OF_WORD);
        }
        PairTable table = new PairTable(MAX_MERGES);
        int lineStart = text.indexOf('\n');
        if (lineStart < 0) {
            return null;
        }
        lineStart++;
        for (int rank = 0; rank < MAX_MERGES && lineStart <= text.length(); rank++) {
            int lineEnd = text.indexOf('\n', lineStart);
            if (lineEnd < 0) {
                lineEnd = text.length();
            }
            String left;
            String right;
            int space = simpleSpace(text, lineStart, lineEnd);
            if (space > 0) { // the usual "left right" line
                left = text.substring(lineStart, space);
                right = text.substring(space + 1, lineEnd);
            } else {
                List<String> parts = PythonText.split(text, lineStart, lineEnd);
                left = parts.size() == 2 ? parts.get(0) : null;
                right = parts.size() == 2 ? parts.get(1) : null;
            }
            if (left != null) {
                int a = intern(symbolIds, names, left);
                int b = intern(symbolIds, names, right);
                int merged = intern(symbolIds, names, left.concat(right));
                table.put(a, b, rank, merged);
            }
            lineStart = lineEnd + 1;
        }
        return new BytePairEncoder(symbolIds, names, table, tokenId);
    }

    /**
     * Fast path of {@code line.split()}: the index of the space when {@code text[from, to)} is two non-empty
     * parts separated by one ASCII space and holds no other (Python) white space; -1 otherwise.
     */
    private static int simpleSpace(String text, int from, int to) {
        int space = -1;
        for (int i = from; i < to; i++) {
            char c = text.charAt(i);
            if (c == ' ') {
                if (space >= 0) {
                    return -1;
                }
                space = i;
            } else if (c <= 0x20 || (c >= 0x85 && PythonText.isSpace(c))) {
                return -1;
            }
        }
        return space > from && space < to - 1 ? space : -1;
    }

    private static int intern(Map<String, Integer> ids, List<String> names, String symbol) {
        Integer id = ids.get(symbol);
        if (id == null) {
            id = names.size();
            ids.put(symbol, id);
            names.add(symbol);
        }
        return id;
    }

    /** Number of merges that can apply (after dropping malformed lines and repeats). */
    int mergeCount() {
        return pairs.size();
    }

    /** Appends the token ids of one pre-token (a match of CLIP's pattern) to {@code out}. */
    void encodeWord(String word, IntList out) {
        int[] ids = cache.get(word);
        if (ids == null) {
            ids = bpe(word.getBytes(StandardCharsets.UTF_8));
            if (word.length() <= CACHE_MAX_WORD && cache.size() < CACHE_LIMIT) {
                cache.putIfAbsent(word, ids);
            }
        }
        out.addAll(ids);
    }

    /** Like {@link #encodeWord} but gives the token strings (transformers' {@code tokenize}). */
    void tokenizeWord(String word, List<String> out) {
        int[] symbols = bpeSymbols(word.getBytes(StandardCharsets.UTF_8));
        for (int s : symbols) {
            out.add(symbolNames[s]);
        }
    }

    private int[] bpe(byte[] utf8) {
        int[] symbols = bpeSymbols(utf8);
        for (int i = 0; i < symbols.length; i++) {
            symbols[i] = symbolToken[symbols[i]];
        }
        return symbols;
    }

    private int[] bpeSymbols(byte[] utf8) {
        int len = utf8.length;
        int[] word = new int[len];
        for (int i = 0; i < len; i++) {
            int b = utf8[i] & 0xff;
            word[i] = i == len - 1 ? byteSymbolEndOfWord[b] : byteSymbol[b];
        }
        while (len > 1) {
            long best = PairTable.MISSING;
            int bestLeft = -1;
            int bestRight = -1;
            for (int i = 0; i + 1 < len; i++) {
                long v = pairs.get(word[i], word[i + 1]);
                if (v != PairTable.MISSING && (best == PairTable.MISSING || v < best)) { // rank in the high bits
                    best = v;
                    bestLeft = word[i];
                    bestRight = word[i + 1];
                }
            }
            if (best == PairTable.MISSING) {
                break;
            }
            int merged = (int) best;
            int out = 0;
            for (int i = 0; i < len; ) {
                if (i + 1 < len && word[i] == bestLeft && word[i + 1] == bestRight) {
                    word[out++] = merged;
                    i += 2;
                } else {
                    word[out++] = word[i++];
                }
            }
            len = out;
        }
        if (len == word.length) {
            return word;
        }
        int[] result = new int[len];
        System.arraycopy(word, 0, result, 0, len);
        return result;
    }

    /** GPT-2/CLIP {@code bytes_to_unicode}: printable Latin-1 bytes map to themselves, the rest to U+0100.. */
    static char[] bytesToUnicode() {
        char[] map = new char[256];
        boolean[] printable = new boolean[256];
        for (int b = '!'; b <= '~'; b++) {
            printable[b] = true;
        }
        for (int b = 0xA1; b <= 0xAC; b++) {
            printable[b] = true;
        }
        for (int b = 0xAE; b <= 0xFF; b++) {
            printable[b] = true;
        }
        int n = 0;
        for (int b = 0; b < 256; b++) {
            map[b] = printable[b] ? (char) b : (char) (256 + n++);
        }
        return map;
    }

    /** Open-addressing map (left symbol, right symbol) -> rank << 32 | merged symbol. */
    private static final class PairTable {
        static final long MISSING = -1L;
        private final long[] keys;
        private final long[] values;
        private final int mask;
        private int size;

        PairTable(int capacity) {
            int n = Integer.highestOneBit(Math.max(16, capacity * 2 - 1)) << 1;
            keys = new long[n];
            values = new long[n];
            java.util.Arrays.fill(keys, MISSING);
            mask = n - 1;
        }

        private static long key(int a, int b) {
            return ((long) a << 32) | (b & 0xffffffffL);
        }

        private int slot(long key) {
            long h = key * 0x9E3779B97F4A7C15L;
            return (int) (h >>> 40) & mask;
        }

        void put(int a, int b, int rank, int merged) {
            long k = key(a, b);
            int i = slot(k);
            while (keys[i] != MISSING && keys[i] != k) {
                i = (i + 1) & mask;
            }
            if (keys[i] == MISSING) {
                size++;
            }
            keys[i] = k;
            values[i] = ((long) rank << 32) | (merged & 0xffffffffL);
        }

        long get(int a, int b) {
            long k = key(a, b);
            int i = slot(k);
            while (true) {
                long found = keys[i];
                if (found == k) {
                    return values[i];
                }
                if (found == MISSING) {
                    return MISSING;
                }
                i = (i + 1) & mask;
            }
        }

        int size() {
            return size;
        }
    }
}
