package io.sdxl4j.text;

import java.util.function.Consumer;

/**
 * {@code regex.findall} of CLIP's pre-tokenizer pattern, compiled with {@code re.IGNORECASE} by the
 * {@code regex} module:
 * <pre>
 * &lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * </pre>
 * written out as a scanner: at each position the alternatives are tried in that order; a position where none
 * matches (white space) is skipped. Case-insensitive matching of the literals follows the regex module's simple
 * case folding, so U+017F (long s) matches "s" and U+212A (Kelvin sign) matches "k". One quirk of that module
 * is kept: with IGNORECASE, U+0345 (combining ypogegrammeni, whose upper case is a letter) is matched by neither
 * class, so it is dropped like white space.
 */
final class ClipPattern {
    private ClipPattern() {}

    private static final String[] LITERALS = {
        "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
    };

    /** Calls {@code sink} with every match in {@code text}, in order. */
    static void findAll(String text, Consumer<String> sink) {
        int n = text.length();
        int i = 0;
        while (i < n) {
            int len = literalAt(text, i);
            if (len > 0) {
                sink.accept(text.substring(i, i + len));
                i += len;
                continue;
            }
            int cp = text.codePointAt(i);
            int cc = Character.charCount(cp);
            if (isLetter(cp)) {
                int start = i;
                i += cc;
                while (i < n && isLetter(cp = text.codePointAt(i))) {
                    i += Character.charCount(cp);
                }
                sink.accept(text.substring(start, i));
            } else if (isNumber(cp)) {
                sink.accept(text.substring(i, i + cc));
                i += cc;
            } else if (isOther(cp)) {
                int start = i;
                i += cc;
                while (i < n && isOther(cp = text.codePointAt(i))) {
                    i += Character.charCount(cp);
                }
                sink.accept(text.substring(start, i));
            } else {
                i += cc;
            }
        }
    }

    /** Length (in chars) of the first literal alternative matching at {@code pos}, or 0. */
    private static int literalAt(String text, int pos) {
        int first = text.charAt(pos);
        if (first != '<' && first != '\'') {
            return 0;
        }
        for (String lit : LITERALS) {
            int j = pos;
            int k = 0;
            while (k < lit.length() && j < text.length()) {
                int cp = text.codePointAt(j);
                if (!sameIgnoringCase(cp, lit.charAt(k))) {
                    break;
                }
                j += Character.charCount(cp);
                k++;
            }
            if (k == lit.length()) {
                return j - pos;
            }
        }
        return 0;
    }

    /** {@code cp} equals the ASCII pattern character {@code p} under simple case folding. */
    private static boolean sameIgnoringCase(int cp, char p) {
        if (cp == p) {
            return true;
        }
        if (p >= 'a' && p <= 'z') {
            return cp == p - 32 || (p == 's' && cp == 0x017F) || (p == 'k' && cp == 0x212A);
        }
        return false;
    }

    /** {@code \s} of the regex module: Unicode White_Space. */
    static boolean isSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F
                || cp == 0x3000;
    }

    /** {@code \p{L}} (Unicode 14.0 categories, see {@link UnicodeTables}). */
    static boolean isLetter(int cp) {
        return UnicodeTables.isLetter(cp);
    }

    /** {@code \p{N}}. */
    static boolean isNumber(int cp) {
        return UnicodeTables.isNumber(cp);
    }

    private static boolean isOther(int cp) {
        return !isSpace(cp) && !isLetter(cp) && !isNumber(cp) && cp != 0x0345;
    }
}
