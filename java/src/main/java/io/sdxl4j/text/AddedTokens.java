package io.sdxl4j.text;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The added (mostly special) tokens of a slow transformers tokenizer and the first step of its
 * {@code tokenize()}: the raw text (before any clean-up or lower-casing) is cut around every occurrence of an added
 * token's content, case-sensitively, and each occurrence becomes that token's id directly. For SDXL these are
 * {@code <|startoftext|>}, {@code <|endoftext|>} and, for tokenizer_2 whose pad token is "!", the "!" character.
 *
 * <p>transformers finds occurrences with a trie; when no added token is a substring of another (SDXL's case, and
 * every CLIP configuration we know) its result is the leftmost, then longest, match, which is what is done here.
 */
final class AddedTokens {
    /** One added token as transformers' {@code AddedToken}: content, id and whitespace handling. */
    record Token(String content, int id, boolean lstrip, boolean rstrip, boolean singleWord, boolean special) {}

    private final Map<String, Token> byContent;
    private final String[] contents; // longest first, for the longest match at a position
    private final boolean[] firstChar = new boolean[128];
    private final boolean anyNonAsciiFirst;

    AddedTokens(Map<String, Token> byContent) {
        this.byContent = Collections.unmodifiableMap(new LinkedHashMap<>(byContent));
        List<String> list = new ArrayList<>(byContent.keySet());
        list.removeIf(String::isEmpty);
        list.sort((a, b) -> Integer.compare(b.length(), a.length()));
        this.contents = list.toArray(new String[0]);
        boolean nonAscii = false;
        for (String c : contents) {
            char f = c.charAt(0);
            if (f < 128) {
                firstChar[f] = true;
            } else {
                nonAscii = true;
            }
        }
        this.anyNonAsciiFirst = nonAscii;
    }

    Token get(String content) {
        return byContent.get(content);
    }

    Map<String, Token> all() {
        return byContent;
    }

    /**
     * Splits {@code text} into pieces that are either added tokens (as {@link Token}) or plain text (as
     * {@link String}), applying each token's lstrip / rstrip / single_word rule as transformers 4.44 does; empty
     * pieces are dropped.
     */
    List<Object> split(String text) {
        List<String> pieces = new ArrayList<>();
        List<Token> tokens = new ArrayList<>(); // parallel to pieces; null for plain text
        int n = text.length();
        int plainStart = 0;
        int i = 0;
        while (i < n) {
            char c = text.charAt(i);
            Token match = null;
            if (c < 128 ? firstChar[c] : anyNonAsciiFirst) {
                for (String content : contents) {
                    if (text.startsWith(content, i)) {
                        match = byContent.get(content);
                        break;
                    }
                }
            }
            if (match == null) {
                i++;
                continue;
            }
            if (i > plainStart) {
                pieces.add(text.substring(plainStart, i));
                tokens.add(null);
            }
            pieces.add(match.content());
            tokens.add(match);
            i += match.content().length();
            plainStart = i;
        }
        if (plainStart < n) {
            pieces.add(text.substring(plainStart));
            tokens.add(null);
        }
        // transformers: for each piece that is an added token, strip / glue its neighbours (in place, left to right).
        for (int k = 0; k < pieces.size(); k++) {
            Token t = tokens.get(k);
            if (t == null || !pieces.get(k).equals(t.content())) {
                continue;
            }
            String left = k > 0 ? pieces.get(k - 1) : null;
            String right = k + 1 < pieces.size() ? pieces.get(k + 1) : null;
            if (t.rstrip() && right != null && !right.isEmpty()) {
                pieces.set(k + 1, PythonText.strip(right, true, false));
            }
            if (t.lstrip() && left != null && !left.isEmpty()) {
                pieces.set(k - 1, PythonText.strip(left, false, true));
            }
            // single_word looks at the neighbours as they were before the stripping above (Python's locals).
            if (t.singleWord() && left != null && !left.isEmpty() && left.charAt(left.length() - 1) != ' ') {
                pieces.set(k - 1, pieces.get(k - 1) + pieces.get(k));
                pieces.set(k, "");
            } else if (t.singleWord() && right != null && !right.isEmpty() && right.charAt(0) != ' ') {
                pieces.set(k, pieces.get(k) + right); // Python appends its local copy, unstripped
                pieces.set(k + 1, "");
            }
        }
        List<Object> out = new ArrayList<>(pieces.size());
        for (String p : pieces) {
            if (p.isEmpty()) {
                continue;
            }
            Token t = byContent.get(p);
            out.add(t != null ? t : p);
        }
        return out;
    }
}
