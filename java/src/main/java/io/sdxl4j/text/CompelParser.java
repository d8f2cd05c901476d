package io.sdxl4j.text;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.text.CompelGrammar.PAtt;
import io.sdxl4j.text.CompelGrammar.PBlend;
import io.sdxl4j.text.CompelGrammar.PConj;
import io.sdxl4j.text.CompelGrammar.PFrag;
import io.sdxl4j.text.CompelGrammar.PGroup;
import io.sdxl4j.text.CompelGrammar.PLora;
import io.sdxl4j.text.CompelGrammar.PPrompt;
import io.sdxl4j.text.CompelGrammar.PSwap;
import java.util.ArrayList;
import java.util.List;

/**
 * Parses prompts in compel 2.0.3's weighting syntax (as {@code Compel.parse_prompt_string} does) into the
 * weighted fragments compel encodes. Supported, with compel's exact semantics:
 *
 * <ul>
 *   <li>{@code word+}, {@code word-}, stacked {@code word+++} / {@code word--}: weight 1.1^n / 0.9^n (the sign must
 *       touch the word; {@code (a b)+} and {@code "a b"-} work the same on groups);
 *   <li>{@code (words)1.2}, {@code "words"0.8}, {@code word.attend(1.3)}: explicit weights (no space before the
 *       number);
 *   <li>nesting: {@code ((a (b)1.3)1.1) c} — weights multiply (b gets 1.43);
 *   <li>escapes {@code \(}, {@code \)}: literal parentheses ({@code \,} {@code \.} {@code \+} {@code \-} {@code \=}
 *       keep a word from being read as syntax, and keep their backslash, as in compel);
 *   <li>{@code ("a red cat", "a blue dog").blend(0.7, 0.3)} (optionally {@code , no_normalize}): a weighted sum of
 *       the prompts' conditionings;
 *   <li>{@code ("part one", "part two").and()} / {@code .add()}, with optional weights: conditionings concatenated
 *       along the token axis;
 *   <li>{@code a cat.swap(dog)}: compel's cross-attention control; only the original ({@code cat}) affects the
 *       conditioning, as in compel;
 *   <li>{@code withLora(name, 0.5)} / {@code useLora(name)}: removed from the text and reported in
 *       {@link Conjunction#loras()}.
 * </ul>
 *
 * <p>Anything the grammar does not recognise is taken literally, exactly as compel takes it: {@code a cat AND a
 * dog} is plain text; {@code (a cat, a dog).and()} (items must be single words or quoted) is the text
 * {@code "a cat , a dog .and()"}; an unbalanced {@code (red} is plain text; {@code (red) 1.2} (space) is plain
 * text. Inputs on which compel raises an error are rejected with {@link SdxlException} INVALID_ARGUMENT and
 * compel's reason (mismatched blend weights, {@code .swap()} inside a blend, a blend followed by more text,
 * form feeds / vertical tabs outside quotes, ...); a weight that is not finite is rejected too.
 */
public final class CompelParser {
    private CompelParser() {}

    /** A piece of prompt text and the weight compel gives all its tokens. */
    public record Fragment(String text, double weight) {}

    /** One prompt of a conjunction: either fragments to encode, or a blend of such prompts. */
    public sealed interface Part permits WeightedPrompt, Blend {}

    /**
     * A flattened prompt: the fragments compel tokenizes and weights (in order; neighbours of equal weight fused
     * with a space, as compel does).
     *
     * @param fragments what is encoded; for a prompt with {@code .swap()}, the original side of each swap
     * @param swapEdited the edited side of the swaps (null when the prompt has none); it only matters for the
     *     length of the conditioning (compel pads the original to the edited one's length)
     */
    public record WeightedPrompt(List<Fragment> fragments, List<Fragment> swapEdited) implements Part {
        public WeightedPrompt {
            fragments = List.copyOf(fragments);
            swapEdited = swapEdited == null ? null : List.copyOf(swapEdited);
        }
    }

    /** {@code (...).blend(w...)}: the weighted sum of the prompts' conditionings, weights divided by their sum when normalize. */
    public record Blend(List<WeightedPrompt> prompts, List<Double> weights, boolean normalize) implements Part {
        public Blend {
            prompts = List.copyOf(prompts);
            weights = List.copyOf(weights);
        }
    }

    /** A LoRA reference ({@code withLora(name, weight)}): compel removes it from the text and reports it. */
    public record LoraWeight(String model, double weight) {}

    /**
     * The parsed prompt: its parts' conditionings are concatenated along the token axis, each moved away from
     * the empty prompt's conditioning by its weight when that is not 1. Usually one part.
     */
    public record Conjunction(List<Part> parts, List<Double> weights, List<LoraWeight> loras) {
        public Conjunction {
            parts = List.copyOf(parts);
            weights = List.copyOf(weights);
            loras = List.copyOf(loras);
        }
    }

    /** compel's FlattenedPrompt before it is turned into a {@link WeightedPrompt}: PFrag and PSwap children. */
    record FlatPrompt(List<Object> children) {}

    /**
     * Parses a prompt.
     *
     * @throws SdxlException INVALID_ARGUMENT if prompt is null, or compel would reject it (the message says why)
     */
    public static Conjunction parse(String prompt) {
        if (prompt == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "prompt is null (use \"\" for an empty prompt)");
        }
        prompt = spaceAfterCommas(prompt);
        if (PythonText.strip(prompt).isEmpty()) {
            return new Conjunction(List.of(new WeightedPrompt(List.of(new Fragment("", 1.0)), null)), List.of(1.0), List.of());
        }
        String s = CompelGrammar.expandTabs(prompt);
        CompelGrammar.Input in = new CompelGrammar.Input(s, 0);
        List<Object> out = new ArrayList<>();
        int end;
        try {
            end = CompelGrammar.CONJUNCTION.parse(in, 0, out, true);
        } catch (StackOverflowError e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "compel prompt syntax: prompt is nested too deeply");
        }
        if (end < 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "compel prompt syntax: cannot parse " + quote(prompt)
                    + explainFailure(s));
        }
        return flatten((PConj) out.get(0));
    }

    /** compel's {@code re.sub(r',(\S)', r', \1', prompt)} ("enforce whitespace after ,"), applied before parsing. */
    static String spaceAfterCommas(String s) {
        if (s.indexOf(',') < 0) {
            return s;
        }
        StringBuilder sb = new StringBuilder(s.length() + 8);
        for (int i = 0; i < s.length(); ) {
            char c = s.charAt(i);
            if (c == ',' && i + 1 < s.length() && !PythonText.isSpace(s.codePointAt(i + 1))) {
                int next = s.codePointAt(i + 1);
                sb.append(", ").appendCodePoint(next);
                i += 1 + Character.charCount(next);
            } else {
                sb.append(c);
                i++;
            }
        }
        return sb.toString();
    }

    private static String explainFailure(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\u000b' || c == '\u000c') {
                return " (compel's grammar does not accept a vertical tab or form feed at index " + i + "; use a space)";
            }
        }
        return " (compel's grammar accepts nothing after a .blend(...) but LoRA terms; put other text inside the"
                + " blended prompts)";
    }

    private static String quote(String s) {
        return "\"" + (s.length() > 200 ? s.substring(0, 200) + "..." : s) + "\"";
    }

    // ============================================================================================ flatten

    private record Flat(List<Object> results, List<PLora> loras) {}

    /** {@code PromptParser.flatten}: nested weights multiplied out, neighbours of equal weight fused. */
    private static Conjunction flatten(PConj root) {
        List<Part> parts = new ArrayList<>();
        List<Double> weights = new ArrayList<>();
        List<LoraWeight> loras = new ArrayList<>();
        for (int i = 0; i < root.prompts().size(); i++) {
            Flat f = flattenInternal(root.prompts().get(i), 1.0);
            if (!f.results().isEmpty()) {
                for (Object r : f.results()) {
                    parts.add(toPart(r));
                }
                weights.add(root.weights().get(i));
            }
            for (PLora l : f.loras()) {
                loras.add(new LoraWeight(l.model(), l.weight()));
            }
        }
        for (double w : weights) {
            requireFinite(w, ".and() weight");
        }
        for (LoraWeight l : loras) {
            requireFinite(l.weight(), "LoRA weight");
        }
        return new Conjunction(parts, weights, loras);
    }

    private static Flat flattenInternal(Object node, double weightScale) {
        List<Object> results = new ArrayList<>();
        List<PLora> loras = new ArrayList<>();
        if (node instanceof PGroup || node instanceof List) {
            List<?> items = node instanceof PGroup g ? g.items() : (List<?>) node;
            for (Object x : items) {
                Flat r = flattenInternal(x, weightScale);
                results.addAll(r.results());
                loras.addAll(r.loras());
            }
        } else if (node instanceof PAtt a) {
            for (Object c : a.children()) {
                Flat r = flattenInternal(c, weightScale * a.weight());
                results.addAll(r.results());
                loras.addAll(r.loras());
            }
        } else if (node instanceof PLora l) {
            loras.add(l);
        } else if (node instanceof PFrag f) {
            results.add(PFrag.of(f.text(), f.weight() * weightScale));
        } else if (node instanceof PSwap s) {
            Flat o = flattenInternal(s.original(), weightScale);
            Flat e = flattenInternal(s.edited(), weightScale);
            results.add(PSwap.of(o.results(), e.results()));
            loras.addAll(o.loras());
            loras.addAll(e.loras());
        } else if (node instanceof PBlend b) {
            List<Object> subprompts = new ArrayList<>();
            for (Object p : b.prompts()) {
                Flat r = flattenInternal(p, weightScale);
                subprompts.addAll(r.results());
                loras.addAll(r.loras());
            }
            results.add(CompelGrammar.blend(subprompts, b.weights(), b.normalize()));
        } else if (node instanceof PPrompt p) {
            List<Object> unfused = new ArrayList<>();
            for (Object c : p.children()) {
                Flat r = flattenInternal(c, weightScale);
                unfused.addAll(r.results());
                loras.addAll(r.loras());
            }
            List<Object> fused = fuse(unfused);
            if (!fused.isEmpty()) {
                results.add(new FlatPrompt(fused));
            }
        } else {
            throw CompelGrammar.parsing("unhandled node " + node);
        }
        return new Flat(results, loras);
    }

    /** {@code fuse_fragments}: consecutive fragments of exactly equal weight are joined with a space. */
    private static List<Object> fuse(List<?> items) {
        List<Object> fused = new ArrayList<>();
        for (Object x : items) {
            if (x instanceof PSwap s) {
                fused.add(PSwap.of(fuse(s.original()), fuse(s.edited())));
                continue;
            }
            if (!(x instanceof PFrag f)) {
                throw CompelGrammar.parsing("cannot use " + describe(x) + " here");
            }
            Object last = fused.isEmpty() ? null : fused.get(fused.size() - 1);
            if (last instanceof PFrag lf && lf.weight() == f.weight()) {
                fused.set(fused.size() - 1, PFrag.of(lf.text() + " " + f.text(), lf.weight()));
            } else {
                fused.add(x);
            }
        }
        return fused;
    }

    private static String describe(Object x) {
        return x instanceof PBlend ? "a .blend()" : x instanceof FlatPrompt ? "a nested prompt" : String.valueOf(x);
    }

    private static Part toPart(Object r) {
        if (r instanceof FlatPrompt f) {
            return toWeighted(f);
        }
        if (r instanceof PBlend b) {
            List<WeightedPrompt> prompts = new ArrayList<>();
            for (Object p : b.prompts()) {
                prompts.add(toWeighted((FlatPrompt) p));
            }
            for (double w : b.weights()) {
                requireFinite(w, ".blend() weight");
            }
            return new Blend(prompts, b.weights(), b.normalize());
        }
        throw CompelGrammar.parsing("unexpected " + describe(r));
    }

    /**
     * The fragments compel passes to the embeddings provider: the flattened children, each {@code .swap()}
     * replaced by its original side (compel's {@code _get_conditioning_for_cross_attention_control}).
     */
    private static WeightedPrompt toWeighted(FlatPrompt p) {
        boolean hasSwap = false;
        List<Fragment> original = new ArrayList<>();
        List<Fragment> edited = new ArrayList<>();
        for (Object c : p.children()) {
            if (c instanceof PSwap s) {
                hasSwap = true;
                addFragments(original, s.original());
                addFragments(edited, s.edited());
            } else {
                PFrag f = (PFrag) c;
                original.add(fragment(f));
                edited.add(fragment(f));
            }
        }
        return new WeightedPrompt(original, hasSwap ? edited : null);
    }

    private static void addFragments(List<Fragment> out, List<Object> side) {
        for (Object o : side) {
            if (!(o instanceof PFrag f)) {
                throw CompelGrammar.parsing("a .swap() inside another .swap() is not supported (compel fails on it too)");
            }
            out.add(fragment(f));
        }
    }

    private static Fragment fragment(PFrag f) {
        requireFinite(f.weight(), "weight of \"" + f.text() + "\"");
        return new Fragment(f.text(), f.weight());
    }

    private static void requireFinite(double w, String what) {
        if (!Double.isFinite(w)) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "compel prompt syntax: " + what + " is " + w
                    + " (weights must be finite numbers)");
        }
    }
}
