package io.sdxl4j.text;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How prompts name textual-inversion embeddings by file name, rewritten to the tokens the embeddings were loaded
 * as before tokenizing:
 * <ul>
 *   <li>ComfyUI: {@code embedding:NAME} (optionally {@code NAME.safetensors}), in every prompt syntax; the name runs
 *       to the next space, comma, bracket or colon;</li>
 *   <li>AUTOMATIC1111: the bare {@code NAME} as a word of its own, case-insensitively (A1111 matches the
 *       name's tokens, and its tokenizer lower-cases), only where the A1111 syntax is used.</li>
 * </ul>
 * Names are looked up in a map of known names (case-insensitively for A1111's bare names); a ComfyUI reference
 * to an unknown name is an error, as a silently ignored embedding is hard to notice in the image.
 */
public final class EmbeddingReferences {
    private static final Pattern COMFY = Pattern.compile("embedding:([^\\s,()\\[\\]{}<>|:\"]+)");

    private EmbeddingReferences() {}

    /** The names referenced as {@code embedding:NAME} (".safetensors" dropped), in order of first use. */
    public static Set<String> comfyNames(String prompt) {
        Set<String> out = new LinkedHashSet<>();
        Matcher m = COMFY.matcher(prompt);
        while (m.find()) {
            out.add(stripExtension(m.group(1)));
        }
        return out;
    }

    /** The known names that occur in {@code prompt} as A1111 bare words (the names as given in {@code known}). */
    public static Set<String> a1111Names(String prompt, Iterable<String> known) {
        Set<String> out = new LinkedHashSet<>();
        Pattern p = bareNames(known);
        if (p == null) {
            return out;
        }
        Map<String, String> byLower = lowerMap(known);
        Matcher m = p.matcher(prompt);
        while (m.find()) {
            out.add(byLower.get(m.group().toLowerCase(Locale.ROOT)));
        }
        return out;
    }

    /**
     * Rewrites the references in {@code prompt}: each {@code embedding:NAME} (and, with {@code a1111}, each bare
     * known name) becomes {@code tokenOf.apply(NAME)}.
     *
     * @param known the names that may be referenced (file names without ".safetensors")
     * @throws SdxlException NOT_FOUND for {@code embedding:NAME} with a NAME not in known
     */
    public static String rewrite(String prompt, boolean a1111, Iterable<String> known, Function<String, String> tokenOf) {
        Set<String> names = new LinkedHashSet<>();
        known.forEach(names::add);
        StringBuilder out = new StringBuilder();
        Matcher m = COMFY.matcher(prompt);
        int last = 0;
        List<String> rest = new ArrayList<>();  // the text between ComfyUI references, for the bare-name pass
        List<String> tokens = new ArrayList<>();
        while (m.find()) {
            String name = stripExtension(m.group(1));
            if (!names.contains(name)) {
                throw new SdxlException(ErrorCode.NOT_FOUND, "prompt names embedding:" + name + ", but no embedding of "
                        + "that name is loaded or in the embeddings directory (known: " + names + ")");
            }
            rest.add(prompt.substring(last, m.start()));
            tokens.add(tokenOf.apply(name));
            last = m.end();
        }
        rest.add(prompt.substring(last));
        Pattern bare = a1111 ? bareNames(names) : null;
        Map<String, String> byLower = lowerMap(names);
        for (int i = 0; i < rest.size(); i++) {
            String text = rest.get(i);
            if (bare != null) {
                Matcher b = bare.matcher(text);
                StringBuilder sb = new StringBuilder();
                while (b.find()) {
                    b.appendReplacement(sb, Matcher.quoteReplacement(tokenOf.apply(byLower.get(b.group().toLowerCase(Locale.ROOT)))));
                }
                b.appendTail(sb);
                text = sb.toString();
            }
            out.append(text);
            if (i < tokens.size()) {
                out.append(tokens.get(i));
            }
        }
        return out.toString();
    }

    // One alternation, longest names first, so that one pass never re-reads a replacement; not inside a word and
    // not inside <...> (a token already written out, such as "<name>").
    private static Pattern bareNames(Iterable<String> known) {
        List<String> names = new ArrayList<>();
        known.forEach(names::add);
        names.removeIf(String::isEmpty);
        if (names.isEmpty()) {
            return null;
        }
        names.sort(Comparator.comparingInt(String::length).reversed());
        StringBuilder alt = new StringBuilder();
        for (String n : names) {
            alt.append(alt.length() == 0 ? "" : "|").append(Pattern.quote(n));
        }
        return Pattern.compile("(?<![\\w<])(?:" + alt + ")(?![\\w>])", Pattern.CASE_INSENSITIVE | Pattern.UNICODE_CASE
                | Pattern.UNICODE_CHARACTER_CLASS);
    }

    private static Map<String, String> lowerMap(Iterable<String> names) {
        Map<String, String> m = new java.util.HashMap<>();
        for (String n : names) {
            m.putIfAbsent(n.toLowerCase(Locale.ROOT), n);
        }
        return m;
    }

    private static String stripExtension(String name) {
        return name.toLowerCase(Locale.ROOT).endsWith(".safetensors") ? name.substring(0, name.length() - 12) : name;
    }

    /**
     * diffusers' {@code maybe_convert_prompt}: every added token of {@code tokenizer} that occurs in the prompt and
     * has continuation tokens {@code T_1, T_2, ...} (a multi-vector embedding) is replaced, everywhere in the text,
     * by {@code "T T_1 T_2 ..."}.
     */
    public static String expandMultiVector(String prompt, ClipTokenizer tokenizer) {
        Set<String> seen = new LinkedHashSet<>(tokenizer.tokenize(prompt));
        String out = prompt;
        for (String t : seen) {
            if (!tokenizer.isAddedToken(t) || !tokenizer.isAddedToken(t + "_1")) {
                continue;
            }
            StringBuilder replacement = new StringBuilder(t);
            for (int i = 1; tokenizer.isAddedToken(t + "_" + i); i++) {
                replacement.append(' ').append(t).append('_').append(i);
            }
            out = out.replace(t, replacement.toString());
        }
        return out;
    }
}
