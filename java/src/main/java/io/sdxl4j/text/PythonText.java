package io.sdxl4j.text;

import java.util.ArrayList;
import java.util.List;

/**
 * The few Python {@code str} operations the tokenizer's reference behaviour depends on, with Python's rules
 * rather than Java's where they differ: {@code isspace()} (used by {@code strip()} and {@code split()}) and
 * {@code lower()} (full lower-case mapping with the Final_Sigma rule decided as CPython decides it).
 * Categories and case mappings are Unicode 14.0's ({@link UnicodeTables}), as in Python 3.11.
 */
final class PythonText {
    private PythonText() {}

    /**
     * Python's {@code str.isspace()}: bidirectional class WS, B or S, or category Zs. This is the fixed set below
     * (it has not changed since Unicode 6.3); note that it includes U+001C..U+001F and U+0085, unlike Java's
     * {@link Character#isWhitespace}.
     */
    static boolean isSpace(int cp) {
        if (cp <= 0x20) {
            return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
        }
        if (cp < 0x85) {
            return false;
        }
        return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028
                || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    }

    /** {@code s.strip()}. */
    static String strip(String s) {
        return strip(s, true, true);
    }

    /** {@code s.strip()}, {@code s.lstrip()} (leading only) or {@code s.rstrip()} (trailing only). */
    static String strip(String s, boolean leading, boolean trailing) {
        int start = 0;
        int end = s.length();
        while (leading && start < end && isSpace(s.codePointAt(start))) {
            start += Character.charCount(s.codePointAt(start));
        }
        while (trailing && end > start && isSpace(s.codePointBefore(end))) {
            end -= Character.charCount(s.codePointBefore(end));
        }
        return s.substring(start, end);
    }

    /** {@code s[from:to].split()}: the non-empty runs between whitespace. */
    static List<String> split(String s, int from, int to) {
        List<String> out = new ArrayList<>(2);
        int i = from;
        while (i < to) {
            int cp = s.codePointAt(i);
            if (isSpace(cp)) {
                i += Character.charCount(cp);
                continue;
            }
            int start = i;
            while (i < to) {
                cp = s.codePointAt(i);
                if (isSpace(cp)) {
                    break;
                }
                i += Character.charCount(cp);
            }
            out.add(s.substring(start, i));
        }
        return out;
    }

    /**
     * {@code s.lower()}: each code point's full lower-case mapping. The only unconditional multi-character
     * mapping is U+0130 (capital I with dot) -> "i" + U+0307; U+03A3 (capital sigma) becomes final sigma U+03C2
     * when preceded by a cased letter and not followed by one (case-ignorable characters skipped both ways),
     * exactly CPython's {@code handle_capital_sigma}. Java's {@code toLowerCase} decides Final_Sigma with word
     * boundaries instead, so it is not used.
     */
    static String lower(String s) {
        int n = s.length();
        int i = 0;
        while (i < n) { // fast path: nothing to change
            char c = s.charAt(i);
            if (c >= 0x80 || (c >= 'A' && c <= 'Z')) {
                break;
            }
            i++;
        }
        if (i == n) {
            return s;
        }
        StringBuilder sb = new StringBuilder(n + 4);
        sb.append(s, 0, i);
        while (i < n) {
            int cp = s.codePointAt(i);
            if (cp == 0x130) {
                sb.append('i').append('\u0307');
            } else if (cp == 0x3A3) {
                sb.append(finalSigma(s, i) ? '\u03C2' : '\u03C3');
            } else {
                sb.appendCodePoint(UnicodeTables.toLowerCase(cp));
            }
            i += Character.charCount(cp);
        }
        return sb.toString();
    }

    private static boolean finalSigma(String s, int index) {
        int j = index;
        int c = -1;
        while (j > 0) {
            c = s.codePointBefore(j);
            j -= Character.charCount(c);
            if (!isCaseIgnorable(c)) {
                break;
            }
            c = -1;
        }
        if (c < 0 || !isCased(c)) {
            return false;
        }
        j = index + 1;
        while (j < s.length()) {
            c = s.codePointAt(j);
            if (!isCaseIgnorable(c)) {
                return !isCased(c);
            }
            j += Character.charCount(c);
        }
        return true;
    }

    /** Unicode "Cased": Lu, Ll, Lt, or Other_Lowercase / Other_Uppercase (taken from the JDK). */
    static boolean isCased(int cp) {
        int t = UnicodeTables.type(cp);
        return t == Character.UPPERCASE_LETTER || t == Character.LOWERCASE_LETTER || t == Character.TITLECASE_LETTER
                || Character.isLowerCase(cp) || Character.isUpperCase(cp);
    }

    /**
     * Unicode "Case_Ignorable": categories Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter, MidNumLet or
     * Single_Quote (the fixed list of code points below).
     */
    static boolean isCaseIgnorable(int cp) {
        switch (UnicodeTables.type(cp)) {
            case Character.NON_SPACING_MARK:
            case Character.ENCLOSING_MARK:
            case Character.FORMAT:
            case Character.MODIFIER_LETTER:
            case Character.MODIFIER_SYMBOL:
                return true;
            default:
                break;
        }
        switch (cp) {
            case 0x0027: case 0x002E: case 0x003A: case 0x00B7: case 0x0387: case 0x055F: case 0x05F4:
            case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55:
            case 0xFF07: case 0xFF0E: case 0xFF1A:
                return true;
            default:
                return false;
        }
    }
}
