package io.sdxl4j.text;

import java.text.Normalizer;

/**
 * The text clean-up transformers' CLIPTokenizer applies when ftfy is not installed (the usual diffusers setup,
 * and the one our reference data was made with): {@code " ".join(BasicTokenizer(strip_accents=False,
 * do_split_on_punc=False).tokenize(text))}. In order:
 * <ol>
 *   <li>drop U+0000, U+FFFD and every "C*" category character except tab, newline and carriage return
 *       (so U+000B, U+000C, U+0085, zero-width joiners, soft hyphens... vanish);</li>
 *   <li>tab, newline, carriage return and every Zs space become " ";</li>
 *   <li>CJK ideographs get a space on each side;</li>
 *   <li>NFC normalisation;</li>
 *   <li>split on Python whitespace, lower-case each piece (Python {@code str.lower()}), join with one space.</li>
 * </ol>
 * Accents are kept, punctuation is not split off, HTML entities are not unescaped (ftfy would). Categories and
 * case mappings are Unicode 14.0's ({@link UnicodeTables}); NFC is the JDK's.
 */
final class TextCleaner {
    private TextCleaner() {}

    static String clean(String text) {
        StringBuilder sb = new StringBuilder(text.length() + 8);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == 0 || cp == 0xFFFD || isControl(cp)) {
                continue;
            }
            if (isWhitespace(cp)) {
                sb.append(' ');
            } else if (isChineseChar(cp)) {
                sb.append(' ').appendCodePoint(cp).append(' ');
            } else {
                sb.appendCodePoint(cp);
            }
        }
        String s = sb.toString();
        if (!Normalizer.isNormalized(s, Normalizer.Form.NFC)) {
            s = Normalizer.normalize(s, Normalizer.Form.NFC);
        }
        StringBuilder out = new StringBuilder(s.length());
        for (String piece : PythonText.split(s, 0, s.length())) {
            if (out.length() > 0) {
                out.append(' ');
            }
            out.append(PythonText.lower(piece));
        }
        return out.toString();
    }

    /** transformers' {@code _is_control}: category C*, except tab, newline and carriage return. */
    static boolean isControl(int cp) {
        if (cp == '\t' || cp == '\n' || cp == '\r') {
            return false;
        }
        switch (UnicodeTables.type(cp)) {
            case Character.CONTROL:
            case Character.FORMAT:
            case Character.SURROGATE:
            case Character.PRIVATE_USE:
            case Character.UNASSIGNED:
                return true;
            default:
                return false;
        }
    }

    /** transformers' {@code _is_whitespace}: space, tab, newline, carriage return, or category Zs. */
    static boolean isWhitespace(int cp) {
        return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || UnicodeTables.type(cp) == Character.SPACE_SEPARATOR;
    }

    /** transformers' {@code _is_chinese_char}: the CJK Unified Ideographs blocks and their compatibility blocks. */
    static boolean isChineseChar(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF)
                || (cp >= 0x3400 && cp <= 0x4DBF)
                || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F)
                || (cp >= 0x2B740 && cp <= 0x2B81F)
                || (cp >= 0x2B820 && cp <= 0x2CEAF)
                || (cp >= 0xF900 && cp <= 0xFAFF)
                || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }
}
