package io.sdxl4j.text;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * compel 2.0.3's prompt grammar (prompt_parser.py {@code build_parser_syntax}) on a small re-implementation of the
 * pyparsing 3.0.x semantics it relies on: ordered choice without backtracking into a choice once a sequence moves
 * on, greedy repetition, per-element leading-whitespace skipping (" \n\t\r"; off for CharsNotIn, White, NotAny
 * and everything inside Combine), parse actions that may reject a match, and {@code parse_string}'s
 * expandtabs(). Results are memoised per (element, position) like pyparsing's packrat mode, which changes no
 * result but keeps nested parentheses linear. The tree it builds (fragments, attention, swaps, blends,
 * conjunctions, LoRA terms) is flattened by {@link CompelParser}.
 */
final class CompelGrammar {
    /** pyparsing's default whitespace for skipping. */
    static final String PP_WHITE = " \n\t\r";
    /** Python's string.whitespace (what free words and plain characters exclude). */
    static final String PY_WHITESPACE = " \t\n\r\u000b\u000c";
    /** The characters compel's grammar treats as syntax; each may be escaped with a backslash inside a word. */
    static final String SYNTACTIC = "()\",.+-=";
    private static final String NUMS = "0123456789";
    private static final String ALNUM_KEYWORD =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    /** Grammar recursion limit (about two levels per nested parenthesis or quote): deeper prompts are rejected
     *  instead of risking the Java stack (compel itself hits Python's recursion limit well before). */
    static final int MAX_DEPTH = 400;

    private CompelGrammar() {}

    // ============================================================================================ parse tree

    /** compel's Fragment: text (escapes \( \) \" resolved on every construction, as compel does) and weight. */
    record PFrag(String text, double weight) {
        static PFrag of(String text, double weight) {
            return new PFrag(unescape(text), weight);
        }
    }

    /** compel's Attention: children weighted by {@code weight} (nested weights multiply when flattened). */
    record PAtt(double weight, List<Object> children) {}

    /** compel's CrossAttentionControlSubstitute ({@code .swap()}); an empty side becomes [Fragment('')]. */
    record PSwap(List<Object> original, List<Object> edited) {
        static PSwap of(List<Object> original, List<Object> edited) {
            return new PSwap(original.isEmpty() ? List.of(PFrag.of("", 1)) : List.copyOf(original),
                    edited.isEmpty() ? List.of(PFrag.of("", 1)) : List.copyOf(edited));
        }
    }

    /** compel's LoraWeight ({@code withLora(name, weight)} / {@code useLora(...)}). */
    record PLora(String model, double weight) {}

    /** A pyparsing Group: a nested token list. */
    record PGroup(List<Object> items) {}

    /** compel's Prompt (children not yet flattened). */
    record PPrompt(List<Object> children) {
        static PPrompt of(List<Object> parts) {
            for (Object p : parts) {
                if (!(p instanceof PLora || p instanceof PAtt || p instanceof PFrag || p instanceof PSwap || p instanceof PGroup)) {
                    throw parsing("Prompt cannot contain " + p);
                }
            }
            return new PPrompt(List.copyOf(parts));
        }
    }

    /** compel's Blend of prompts (PPrompt before flattening, CompelParser's flat prompts after). */
    record PBlend(List<Object> prompts, List<Double> weights, boolean normalize) {}

    /** compel's Conjunction. */
    record PConj(List<Object> prompts, List<Double> weights) {
        static PConj of(List<Object> prompts, List<Double> weights) {
            List<Object> ps = new ArrayList<>();
            for (Object x : prompts) {
                ps.add(x instanceof PPrompt || x instanceof PBlend ? x
                        : PPrompt.of(x instanceof PGroup g ? g.items() : List.of(x)));
            }
            List<Double> ws = weights == null || weights.isEmpty() ? ones(ps.size()) : List.copyOf(weights);
            if (ws.size() != ps.size()) {
                throw parsing("while parsing Conjunction: " + ps.size() + " parts but " + ws.size() + " weights");
            }
            return new PConj(List.copyOf(ps), ws);
        }
    }

    static List<Double> ones(int n) {
        List<Double> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(1.0);
        }
        return out;
    }

    /** Fragment.__init__: resolves \( \) \" (in that order) when any of them is present. */
    static String unescape(String text) {
        if (text.contains("\\\"") || text.contains("\\(") || text.contains("\\)")) {
            return text.replace("\\(", "(").replace("\\)", ")").replace("\\\"", "\"");
        }
        return text;
    }

    /** compel raises ParsingException / ValueError here: a prompt we reject with a clear message. */
    static SdxlException parsing(String message) {
        return new SdxlException(ErrorCode.INVALID_ARGUMENT, "compel prompt syntax: " + message);
    }

    // ============================================================================== pyparsing-like engine

    /** A parse action's "this does not match" (pyparsing ParseException raised in an action). */
    static final class NoMatch extends RuntimeException {
        private static final long serialVersionUID = 1L;

        NoMatch() {
            super(null, null, false, false);
        }
    }

    private static final NoMatch NO_MATCH = new NoMatch();

    /** One parse_string call: the (tab-expanded) text and the memo. */
    static final class Input {
        final String s;
        final Map<Long, Memo> memo = new HashMap<>();
        int depth;

        Input(String s, int depth) {
            this.s = s;
            this.depth = depth;
        }

        int skip(int loc) {
            while (loc < s.length() && PP_WHITE.indexOf(s.charAt(loc)) >= 0) {
                loc++;
            }
            return loc;
        }
    }

    private record Memo(int end, List<Object> tokens) {}

    @FunctionalInterface
    interface Action {
        List<Object> apply(List<Object> tokens, Input in);
    }

    private static int nextId;

    abstract static class El {
        final int id;
        boolean skip = true;
        Action action;
        boolean memo;

        El() {
            synchronized (CompelGrammar.class) {
                id = nextId++;
            }
        }

        /** Parses at loc; on success appends this element's tokens to out and returns the end, else -1. */
        final int parse(Input in, int loc, List<Object> out, boolean act) {
            if (!memo) {
                return parseNoMemo(in, loc, out, act);
            }
            long key = ((long) id << 32) | ((long) loc << 1) | (act ? 1 : 0);
            Memo m = in.memo.get(key);
            if (m == null) {
                List<Object> tmp = new ArrayList<>();
                int end = parseNoMemo(in, loc, tmp, act);
                m = new Memo(end, end >= 0 ? List.copyOf(tmp) : List.of());
                in.memo.put(key, m);
            }
            if (m.end >= 0) {
                out.addAll(m.tokens);
            }
            return m.end;
        }

        private int parseNoMemo(Input in, int loc, List<Object> out, boolean act) {
            int start = skip ? in.skip(loc) : loc;
            List<Object> tmp = action != null ? new ArrayList<>() : out;
            int mark = tmp.size();
            int end = impl(in, start, tmp, act);
            if (end < 0) {
                truncate(tmp, mark);
                return -1;
            }
            if (action != null) {
                if (act) {
                    try {
                        tmp = action.apply(tmp, in);
                    } catch (NoMatch e) {
                        return -1;
                    }
                }
                out.addAll(tmp);
            }
            return end;
        }

        abstract int impl(Input in, int loc, List<Object> out, boolean act);

        /** pyparsing leave_whitespace(recursive=True). */
        void noSkipDeep() {
            skip = false;
        }

        El act(Action a) {
            action = a;
            memo = true;
            return this;
        }
    }

    static void truncate(List<Object> list, int size) {
        while (list.size() > size) {
            list.remove(list.size() - 1);
        }
    }

    static final class Lit extends El {
        final String lit;

        Lit(String lit) {
            this.lit = lit;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            if (!in.s.startsWith(lit, loc)) {
                return -1;
            }
            out.add(lit);
            return loc + lit.length();
        }
    }

    /** pyparsing Word(chars): the longest run (at least one) of chars from the set. */
    static final class Word extends El {
        final String chars;

        Word(String chars) {
            this.chars = chars;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            int end = loc;
            while (end < in.s.length() && chars.indexOf(in.s.charAt(end)) >= 0) {
                end++;
            }
            if (end == loc) {
                return -1;
            }
            out.add(in.s.substring(loc, end));
            return end;
        }
    }

    /** pyparsing CharsNotIn (never skips whitespace); {@code one} = exact=1. */
    static final class CharsNotIn extends El {
        final String not;
        final boolean one;

        CharsNotIn(String not, boolean one) {
            this.not = not;
            this.one = one;
            skip = false;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            if (loc >= in.s.length() || not.indexOf(in.s.charAt(loc)) >= 0) {
                return -1;
            }
            int end = loc + 1;
            if (one) {
                // one code point: keep a surrogate pair together (Python counts code points)
                if (Character.isHighSurrogate(in.s.charAt(loc)) && end < in.s.length()
                        && Character.isLowSurrogate(in.s.charAt(end))) {
                    end++;
                }
            } else {
                while (end < in.s.length() && not.indexOf(in.s.charAt(end)) < 0) {
                    end++;
                }
            }
            out.add(in.s.substring(loc, end));
            return end;
        }
    }

    /** pyparsing White(): a run of " \t\r\n"; never skips. */
    static final class White extends El {
        White() {
            skip = false;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            int end = loc;
            while (end < in.s.length() && " \t\r\n".indexOf(in.s.charAt(end)) >= 0) {
                end++;
            }
            if (end == loc) {
                return -1;
            }
            out.add(in.s.substring(loc, end));
            return end;
        }
    }

    /** pyparsing Char(set). */
    static final class CharIn extends El {
        final String set;

        CharIn(String set) {
            this.set = set;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            if (loc >= in.s.length() || set.indexOf(in.s.charAt(loc)) < 0) {
                return -1;
            }
            out.add(String.valueOf(in.s.charAt(loc)));
            return loc + 1;
        }
    }

    static final class StringEnd extends El {
        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            return loc >= in.s.length() ? loc : -1;
        }
    }

    /** pyparsing_common.real, {@code [+-]?(?:\d+\.\d*|\.\d+)} (Python's \d: any Unicode decimal digit), as a float. */
    static final class Real extends El {
        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            String s = in.s;
            int i = loc;
            if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) {
                i++;
            }
            int intStart = i;
            while (i < s.length() && Character.isDigit(s.charAt(i))) {
                i++;
            }
            boolean hasInt = i > intStart;
            if (i >= s.length() || s.charAt(i) != '.') {
                return -1;
            }
            i++;
            int fracStart = i;
            while (i < s.length() && Character.isDigit(s.charAt(i))) {
                i++;
            }
            if (!hasInt && i == fracStart) {
                return -1;
            }
            out.add(pythonFloat(s.substring(loc, i)));
            return i;
        }
    }

    /**
     * pyparsing 3.0.9's QuotedString('"', esc_quote='\\"'): the regex {@code "(?:(?:\\")|(?:[^"\n\r]))*"} run
     * with Python's backtracking. The greedy pass takes {@code \"} as an escaped quote and ends at the first bare
     * '"'; if it meets a line break or the end instead, the regex backtracks to the last escaped quote and lets
     * that quote close the string (the backslash staying in the content). The content then has the whitespace
     * escapes \t \n \f \r turned into the characters and {@code \"} into '"'.
     */
    static final class Quoted extends El {
        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            String s = in.s;
            int n = s.length();
            if (loc >= n || s.charAt(loc) != '"') {
                return -1;
            }
            int lastEscape = -1;
            int close = -1;
            for (int i = loc + 1; i < n; ) {
                char c = s.charAt(i);
                if (c == '\\' && i + 1 < n && s.charAt(i + 1) == '"') {
                    lastEscape = i;
                    i += 2;
                } else if (c == '"') {
                    close = i;
                    break;
                } else if (c == '\n' || c == '\r') {
                    break;
                } else {
                    i++;
                }
            }
            if (close < 0) {
                if (lastEscape < 0) {
                    return -1;
                }
                close = lastEscape + 1;
            }
            String content = s.substring(loc + 1, close);
            if (content.indexOf('\\') >= 0) {
                content = content.replace("\\t", "\t").replace("\\n", "\n").replace("\\f", "\f").replace("\\r", "\r");
            }
            content = content.replace("\\\"", "\"");
            out.add(content);
            return close + 1;
        }
    }

    /** pyparsing And. */
    static final class Seq extends El {
        final El[] parts;

        Seq(El... parts) {
            this.parts = parts;
            skip = parts[0].skip;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            for (El p : parts) {
                loc = p.parse(in, loc, out, act);
                if (loc < 0) {
                    return -1;
                }
            }
            return loc;
        }

        @Override
        void noSkipDeep() {
            skip = false;
            for (El p : parts) {
                p.noSkipDeep();
            }
        }
    }

    /** pyparsing MatchFirst (and Or, which is the same for the mutually exclusive alternatives it gets here). */
    static final class First extends El {
        final El[] alts;

        First(El... alts) {
            this.alts = alts;
            boolean all = true;
            for (El a : alts) {
                all &= a.skip;
            }
            skip = all;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            for (El a : alts) {
                int end = a.parse(in, loc, out, act);
                if (end >= 0) {
                    return end;
                }
            }
            return -1;
        }

        @Override
        void noSkipDeep() {
            skip = false;
            for (El a : alts) {
                a.noSkipDeep();
            }
        }
    }

    /** ParseElementEnhance: Group, Suppress, Optional, ZeroOrMore, OneOrMore, NotAny, Combine. */
    abstract static class Enhance extends El {
        final El expr;

        Enhance(El expr) {
            this.expr = expr;
            skip = expr.skip;
        }

        @Override
        void noSkipDeep() {
            skip = false;
            expr.noSkipDeep();
        }
    }

    static final class Group extends Enhance {
        Group(El expr) {
            super(expr);
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            List<Object> tmp = new ArrayList<>();
            int end = expr.parse(in, loc, tmp, act);
            if (end >= 0) {
                out.add(new PGroup(List.copyOf(tmp)));
            }
            return end;
        }
    }

    static final class Suppress extends Enhance {
        Suppress(El expr) {
            super(expr);
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            return expr.parse(in, loc, new ArrayList<>(), act);
        }
    }

    /** pyparsing Optional: on failure, no tokens, but the whitespace it skipped stays consumed. */
    static final class Opt extends Enhance {
        Opt(El expr) {
            super(expr);
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            int end = expr.parse(in, loc, out, act);
            return end >= 0 ? end : loc;
        }
    }

    static final class Repeat extends Enhance {
        final int min;

        Repeat(El expr, int min) {
            super(expr);
            this.min = min;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            int n = 0;
            while (true) {
                int end = expr.parse(in, loc, out, act);
                if (end < 0 || (end == loc && n >= min)) {
                    break;
                }
                loc = end;
                n++;
            }
            return n >= min ? loc : -1;
        }
    }

    /** pyparsing NotAny: a lookahead (no actions), never skips whitespace itself. */
    static final class NotAny extends Enhance {
        NotAny(El expr) {
            super(expr);
            skip = false;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            return expr.parse(in, loc, new ArrayList<>(), false) >= 0 ? -1 : loc;
        }

        @Override
        void noSkipDeep() {
            expr.noSkipDeep();
        }
    }

    /** pyparsing Combine: skips leading whitespace itself, its contents never do; joins their strings. */
    static final class Combine extends Enhance {
        Combine(El expr) {
            super(expr);
            expr.noSkipDeep();
            skip = true;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            List<Object> tmp = new ArrayList<>();
            int end = expr.parse(in, loc, tmp, act);
            if (end < 0) {
                return -1;
            }
            StringBuilder sb = new StringBuilder();
            for (Object t : tmp) {
                sb.append(t);
            }
            out.add(sb.toString());
            return end;
        }

        @Override
        void noSkipDeep() {
            skip = false;
            expr.noSkipDeep();
        }
    }

    /** pyparsing Forward (defined later; memoised, and counts nesting depth). */
    static final class Forward extends El {
        El expr;

        Forward() {
            memo = true;
        }

        void define(El e) {
            expr = e;
            skip = e.skip;
        }

        /** quoted_fragment.copy(): the same expression under another action. */
        Forward copyWith(Action a) {
            Forward f = new Forward();
            f.define(expr);
            f.action = a;
            return f;
        }

        @Override
        int impl(Input in, int loc, List<Object> out, boolean act) {
            if (++in.depth > MAX_DEPTH) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                        "compel prompt syntax: prompt is nested too deeply (more than about " + MAX_DEPTH / 2 + " levels)");
            }
            try {
                return expr.parse(in, loc, out, act);
            } finally {
                in.depth--;
            }
        }
    }

    // ---------------------------------------------------------------------------------------- constructors

    private static El lit(String s) {
        return new Lit(s);
    }

    private static El seq(El... parts) {
        return new Seq(parts);
    }

    private static El first(El... alts) {
        return new First(alts);
    }

    private static El group(El e) {
        return new Group(e);
    }

    private static El suppress(El e) {
        return new Suppress(e);
    }

    private static El opt(El e) {
        return new Opt(e);
    }

    private static El zeroOrMore(El e) {
        return new Repeat(e, 0);
    }

    private static El oneOrMore(El e) {
        return new Repeat(e, 1);
    }

    private static El delimitedList(El e) {
        return seq(e, zeroOrMore(seq(suppress(lit(",")), e)));
    }

    /** number = pyparsing_common.real | Combine(Optional("-") + Word(nums)) -> float. */
    private static El number() {
        El integer = new Combine(seq(opt(lit("-")), new Word(NUMS))).act((t, in) -> List.of(pythonFloat((String) t.get(0))));
        return first(new Real(), integer);
    }

    // ============================================================================================= grammar

    static final Forward ATTENTION = new Forward();
    static final Forward SWAP = new Forward();
    static final Forward PARENTHESIZED = new Forward();
    static final Forward QUOTED = new Forward();
    static final Forward LORA = new Forward();
    static final El FRAGMENT_INCLUDING_COMMAS;
    static final El PROMPT;
    static final El CONJUNCTION;
    private static final El FRAGMENT_TO_END;
    private static final El PROMPT_TO_END;

    static {
        El lparen = suppress(lit("("));
        El rparen = suppress(lit(")"));
        El comma = suppress(lit(","));
        El equals = suppress(lit("="));
        El number = number();
        El keyword = new Word(ALNUM_KEYWORD);

        // a word that absolutely does not contain any meaningful syntax
        El escaped = first(lit("\\("), lit("\\)"), lit("\\\""), lit("\\,"), lit("\\."), lit("\\+"), lit("\\-"), lit("\\="));
        El signNotAtWordEnd = seq(first(lit("-"), lit("+")),
                new NotAny(first(new White(), new CharIn(SYNTACTIC), new StringEnd())));
        El nonFloatNumber = new Combine(seq(opt(lit("-")), new Word(NUMS)));
        El nonSyntaxWord = new Combine(oneOrMore(first(escaped, signNotAtWordEnd, nonFloatNumber,
                new CharsNotIn(PY_WHITESPACE + SYNTACTIC, true))))
                .act((t, in) -> List.of(PFrag.of((String) t.get(0), 1)));
        // a word that can contain any character at all
        El freeWord = new CharsNotIn(PY_WHITESPACE, false).act((t, in) -> List.of(PFrag.of((String) t.get(0), 1)));

        El[] parts = {LORA, ATTENTION, SWAP, PARENTHESIZED, QUOTED, nonSyntaxWord};
        El commaOrPeriod = first(lit(","), lit(".")).act((t, in) -> List.of(PFrag.of((String) t.get(0), 1)));
        El[] partsWithPunctuation = java.util.Arrays.copyOf(parts, parts.length + 1);
        partsWithPunctuation[parts.length] = commaOrPeriod;
        FRAGMENT_INCLUDING_COMMAS = zeroOrMore(first(partsWithPunctuation));
        El fragmentExcludingCommas = zeroOrMore(first(parts));
        FRAGMENT_TO_END = seq(FRAGMENT_INCLUDING_COMMAS, new StringEnd());

        QUOTED.define(new Quoted());
        QUOTED.action = (t, in) -> parseFragmentString((String) t.get(0), FRAGMENT_TO_END, in);
        PARENTHESIZED.define(seq(lparen, FRAGMENT_INCLUDING_COMMAS, rparen));

        El option = group(first(seq(keyword, equals, first(number, keyword)), number, keyword));
        El options = opt(delimitedList(option));
        El target = first(QUOTED, PARENTHESIZED, nonSyntaxWord);

        El weightOperator = first(new Word("+"), new Word("-"), number);
        El attentionExplicit = seq(group(target), lit(".attend"), lparen, group(weightOperator), rparen)
                .act((t, in) -> List.of(makeOperator(t)));
        El attentionImplicit = first(
                seq(group(first(QUOTED, PARENTHESIZED)), new NotAny(new White()), group(weightOperator)),
                seq(group(nonSyntaxWord), new NotAny(new White()), group(first(new Word("+"), new Word("-")))))
                .act((t, in) -> List.of(makeOperator(List.of(t.get(0), ".attend", t.get(1)))));
        ATTENTION.define(first(attentionExplicit, attentionImplicit));

        SWAP.define(seq(group(target), lit(".swap"), lparen, group(fragmentExcludingCommas), opt(seq(comma, options)), rparen));
        SWAP.action = (t, in) -> List.of(makeOperator(t));

        LORA.define(seq(first(lit("useLora"), lit("withLora")), lparen, keyword, opt(seq(comma, number)), rparen));
        LORA.action = (t, in) -> List.of(new PLora((String) t.get(1), t.size() > 2 ? (Double) t.get(2) : 1.0));

        // an entire self-contained prompt, which can be used in a Blend or Conjunction
        PROMPT = zeroOrMore(first(SWAP, LORA, ATTENTION, QUOTED, PARENTHESIZED, freeWord, suppress(new White())));
        PROMPT_TO_END = seq(PROMPT, new StringEnd());
        Forward quotedPrompt = QUOTED.copyWith((t, in) -> parseFragmentString((String) t.get(0), PROMPT_TO_END, in));

        El items = group(delimitedList(group(first(target, quotedPrompt))));
        El blend = seq(lparen, items, rparen, lit(".blend"), lparen, group(options), rparen)
                .act((t, in) -> List.of(makeOperator(t)));
        El explicitConjunction = seq(lparen, items, rparen, first(lit(".and"), lit(".add")), lparen, group(options), rparen)
                .act((t, in) -> List.of(makeOperator(t)));
        El optionalLoras = opt(group(oneOrMore(LORA)));
        El implicitConjunction = seq(optionalLoras, first(blend, group(PROMPT)), optionalLoras, new StringEnd())
                .act((t, in) -> List.of(PConj.of(t, null)));
        CONJUNCTION = first(explicitConjunction, implicitConjunction);
    }

    /** {@code parse_fragment_str}: re-parses a quoted string's content with {@code expression + StringEnd()}. */
    private static List<Object> parseFragmentString(String fragment, El expressionToEnd, Input outer) {
        if (PythonText.strip(fragment).isEmpty()) {
            return List.of(PFrag.of("", 1));
        }
        fragment = fragment.replace("\"", "\\\""); // escape unescaped quotes
        Input in = new Input(expandTabs(fragment), outer.depth);
        List<Object> out = new ArrayList<>();
        if (expressionToEnd.parse(in, 0, out, true) < 0) {
            throw NO_MATCH; // pyparsing ParseException inside the action: this alternative does not match
        }
        return out;
    }

    /** {@code make_operator_object}: tokens [target group, operator, arguments group, ...]. */
    private static Object makeOperator(List<Object> x) {
        String operator = (String) x.get(1);
        List<Object> target = ((PGroup) x.get(0)).items();
        List<Object> arguments = ((PGroup) x.get(2)).items();
        switch (operator) {
            case ".attend": {
                Object raw = arguments.get(0);
                double weight;
                if (raw instanceof Double d) {
                    weight = d;
                } else {
                    String s = (String) raw;
                    weight = Math.pow(s.charAt(0) == '+' ? 1.1 : 0.9, s.length());
                }
                return new PAtt(weight, List.copyOf(target));
            }
            case ".swap":
                return PSwap.of(target, arguments);
            case ".blend": {
                List<Object> prompts = new ArrayList<>();
                for (Object p : target) {
                    prompts.add(PPrompt.of(((PGroup) p).items()));
                }
                List<Object> raw = new ArrayList<>(arguments);
                boolean normalize = true;
                if (!raw.isEmpty() && "no_normalize".equals(((PGroup) raw.get(raw.size() - 1)).items().get(0))) {
                    normalize = false;
                    raw.remove(raw.size() - 1);
                }
                List<Double> weights = new ArrayList<>();
                for (Object w : raw) {
                    weights.add(pythonFloat(((PGroup) w).items().get(0)));
                }
                return blend(prompts, weights, normalize);
            }
            case ".and":
            case ".add": {
                List<Object> prompts = new ArrayList<>();
                for (Object p : target) {
                    prompts.add(PPrompt.of(((PGroup) p).items()));
                }
                List<Double> weights = new ArrayList<>();
                for (Object w : arguments) {
                    weights.add(pythonFloat(((PGroup) w).items().get(0)));
                }
                return PConj.of(prompts, weights);
            }
            default:
                throw parsing("unrecognized operator " + operator);
        }
    }

    /** Blend.__init__'s checks: one weight per prompt (all 1 if none given), no {@code .swap()} inside. */
    static PBlend blend(List<Object> prompts, List<Double> weights, boolean normalize) {
        List<Double> ws = weights == null || weights.isEmpty() ? ones(prompts.size()) : List.copyOf(weights);
        if (ws.size() != prompts.size()) {
            throw parsing("while parsing Blend: " + prompts.size() + " prompts but " + ws.size() + " weights");
        }
        for (Object p : prompts) {
            List<?> children = p instanceof PPrompt pp ? pp.children() : ((CompelParser.FlatPrompt) p).children();
            for (Object c : children) {
                if (c instanceof PSwap) {
                    throw parsing("while parsing Blend: sorry, you cannot do .swap() as part of a Blend");
                }
            }
        }
        return new PBlend(List.copyOf(prompts), ws, normalize);
    }

    /** Python float() of a token: a float already, or a string ("0.5", "inf", "nan", ...). */
    static double pythonFloat(Object token) {
        if (token instanceof Double d) {
            return d;
        }
        String s = PythonText.strip((String) token);
        String t = s.startsWith("+") || s.startsWith("-") ? s.substring(1) : s;
        String lower = t.toLowerCase(java.util.Locale.ROOT);
        double sign = s.startsWith("-") ? -1 : 1;
        if (lower.equals("inf") || lower.equals("infinity")) {
            return sign * Double.POSITIVE_INFINITY;
        }
        if (lower.equals("nan")) {
            return Double.NaN;
        }
        StringBuilder ascii = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            ascii.append(Character.isDigit(c) ? (char) ('0' + Character.digit(c, 10)) : c);
        }
        String a = ascii.toString();
        if (a.matches("[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?")) {
            return Double.parseDouble(a);
        }
        throw parsing("could not convert string to float: '" + token + "'");
    }

    /** Python's str.expandtabs() (tab size 8, columns restart after \n and \r), which parse_string applies. */
    static String expandTabs(String s) {
        if (s.indexOf('\t') < 0) {
            return s;
        }
        StringBuilder sb = new StringBuilder(s.length() + 16);
        int col = 0;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == '\t') {
                int n = 8 - col % 8;
                sb.append(" ".repeat(n));
                col += n;
            } else {
                sb.appendCodePoint(cp);
                col = cp == '\n' || cp == '\r' ? 0 : col + 1;
            }
        }
        return sb.toString();
    }
}
