package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.text.CompelParser.Blend;
import io.sdxl4j.text.CompelParser.Conjunction;
import io.sdxl4j.text.CompelParser.Fragment;
import io.sdxl4j.text.CompelParser.LoraWeight;
import io.sdxl4j.text.CompelParser.WeightedPrompt;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link CompelParser} against compel 2.0.3's own parser: every expected value below is what
 * {@code PromptParser().parse_conjunction(prompt)} (then flattened) returns with pyparsing 3.0.9, the version of
 * the reference setup (weights compared exactly, as Python computes them: 1.1 ** 2 = 1.2100000000000002).
 */
class CompelParserTest {

    /** The single prompt of a one-part conjunction, as (text, weight) pairs. */
    private static List<Fragment> single(String prompt) {
        Conjunction c = CompelParser.parse(prompt);
        assertEquals(1, c.parts().size(), prompt + " -> " + c);
        assertEquals(List.of(1.0), c.weights());
        return assertInstanceOf(WeightedPrompt.class, c.parts().get(0)).fragments();
    }

    private static List<Fragment> frags(Object... textWeight) {
        List<Fragment> out = new ArrayList<>();
        for (int i = 0; i < textWeight.length; i += 2) {
            out.add(new Fragment((String) textWeight[i], ((Number) textWeight[i + 1]).doubleValue()));
        }
        return out;
    }

    private static void assertSingle(String prompt, Object... textWeight) {
        assertEquals(frags(textWeight), single(prompt), prompt);
    }

    // ------------------------------------------------------------------------------------------- weights

    @Test
    void plusAndMinusStack() {
        assertSingle("a red+ cat", "a", 1.0, "red", 1.1, "cat", 1.0);
        assertSingle("a red++ cat", "a", 1.0, "red", 1.2100000000000002, "cat", 1.0);
        assertSingle("a red- cat", "a", 1.0, "red", 0.9, "cat", 1.0);
        assertSingle("a red-- cat", "a", 1.0, "red", 0.81, "cat", 1.0);
        assertSingle("cat++dog", "cat", 1.2100000000000002, "dog", 1.0);
        assertSingle("cat--  ", "cat", 0.81);
    }

    @Test
    void explicitWeights() {
        assertSingle("a (red)1.2 cat", "a", 1.0, "red", 1.2, "cat", 1.0);
        assertSingle("\"a cat\"0.8 sits", "a cat", 0.8, "sits", 1.0);
        assertSingle("cat.attend(1.5) sits", "cat", 1.5, "sits", 1.0);
        assertSingle("a (b (c)0.5)2", "a", 1.0, "b", 2.0, "c", 1.0);
    }

    @Test
    void groupsAndNestingMultiply() {
        assertSingle("(a red cat on a mat)+++", "a red cat on a mat", 1.3310000000000004);
        assertSingle("((nested (parens)1.3)1.1) test", "nested", 1.1, "parens", 1.4300000000000002, "test", 1.0);
        assertSingle("a (red cat)0.5 on a (blue mat)1.5", "a", 1.0, "red cat", 0.5, "on a", 1.0, "blue mat", 1.5);
        // neighbours of equal weight are fused with a space
        assertSingle("(a)1.1 (b)1.1", "a b", 1.1);
    }

    // ------------------------------------------------------------------------------------- literal text

    @Test
    void malformedSyntaxIsTakenLiterally() {
        assertSingle("(red) 1.2", "red 1.2", 1.0);   // a space before the weight
        assertSingle("(red", "(red", 1.0);           // unbalanced
        assertSingle("red )", "red )", 1.0);
        assertSingle("(red)-0.5", "red", 0.9, "0.5", 1.0); // '-' is the minus operator; the number is text
        assertSingle("a+b c", "a+b c", 1.0);         // a sign inside a word
        assertSingle("a1.5", "a1.5", 1.0);
        assertSingle("a cat AND a dog", "a cat AND a dog", 1.0); // AND is not compel syntax
        // .and() items must be single words or quoted: this is all text, parentheses dropped
        assertSingle("(a cat, a dog).and()", "a cat , a dog .and()", 1.0);
    }

    @Test
    void escapesAndCommas() {
        assertSingle("\\(foo\\) bar", "(foo) bar", 1.0);
        assertSingle("a \\(red\\)1.2 cat", "a (red)1.2 cat", 1.0);
        assertSingle("a,b", "a, b", 1.0); // compel puts a space after every comma first
        assertSingle("a, b", "a, b", 1.0);
        assertSingle("\"a\\\"b\" c", "a\"b c", 1.0);
        assertSingle("\"\" cat", " cat", 1.0);
        assertSingle("x\ty", "x y", 1.0);
        assertSingle("  cat", "cat", 1.0);
    }

    // ---------------------------------------------------------------------------- conjunction and blend

    @Test
    void conjunction() {
        Conjunction c = CompelParser.parse("(cat, dog).and(1, 0.5)");
        assertEquals(List.of(new WeightedPrompt(frags("cat", 1.0), null), new WeightedPrompt(frags("dog", 1.0), null)), c.parts());
        assertEquals(List.of(1.0, 0.5), c.weights());
        c = CompelParser.parse("(\"a cat\", \"a dog\").and()");
        assertEquals(List.of(new WeightedPrompt(frags("a cat", 1.0), null), new WeightedPrompt(frags("a dog", 1.0), null)), c.parts());
        assertEquals(List.of(1.0, 1.0), c.weights());
    }

    @Test
    void blend() {
        Conjunction c = CompelParser.parse("(\"a red cat\", \"a blue dog\").blend(0.7, 0.3)");
        Blend b = assertInstanceOf(Blend.class, c.parts().get(0));
        assertEquals(List.of(new WeightedPrompt(frags("a red cat", 1.0), null), new WeightedPrompt(frags("a blue dog", 1.0), null)), b.prompts());
        assertEquals(List.of(0.7, 0.3), b.weights());
        assertTrue(b.normalize());

        b = assertInstanceOf(Blend.class, CompelParser.parse("(\"a\", \"b\").blend(1, 3, no_normalize)").parts().get(0));
        assertEquals(List.of(1.0, 3.0), b.weights());
        assertFalse(b.normalize());

        b = assertInstanceOf(Blend.class, CompelParser.parse("(cat, dog).blend()").parts().get(0));
        assertEquals(List.of(1.0, 1.0), b.weights());
    }

    @Test
    void swapKeepsTheOriginal() {
        Conjunction c = CompelParser.parse("a cat.swap(dog) playing");
        WeightedPrompt p = assertInstanceOf(WeightedPrompt.class, c.parts().get(0));
        assertEquals(frags("a", 1.0, "cat", 1.0, "playing", 1.0), p.fragments()); // not fused across the swap
        assertEquals(frags("a", 1.0, "dog", 1.0, "playing", 1.0), p.swapEdited());
        assertNull(((WeightedPrompt) CompelParser.parse("a cat playing").parts().get(0)).swapEdited());
    }

    @Test
    void loraTermsAreRemovedAndReported() {
        Conjunction c = CompelParser.parse("withLora(style, 0.6) a cat");
        assertEquals(frags("a cat", 1.0), ((WeightedPrompt) c.parts().get(0)).fragments());
        assertEquals(List.of(new LoraWeight("style", 0.6)), c.loras());
        c = CompelParser.parse("a cat useLora(x)");
        assertEquals(List.of(new LoraWeight("x", 1.0)), c.loras());
    }

    @Test
    void emptyPrompts() {
        assertSingle("", "", 1.0);
        assertSingle("   \t ", "", 1.0);
        assertSingle("\u3000", "", 1.0); // Python's strip() knows Unicode spaces
        assertTrue(CompelParser.parse("()").parts().isEmpty()); // only syntax: no parts (Compel encodes it as "")
    }

    // ----------------------------------------------------------------------------------------- rejected

    @Test
    void inputsCompelRejects() {
        assertRejected(null, "null");
        assertRejected("(\"a\", \"b\").blend(1)", "2 prompts but 1 weights");
        assertRejected("(\"a\", \"b\").and(1, 2, 3)", "2 parts but 3 weights");
        assertRejected("(\"a\", \"b\").blend(0.5, 0.5) extra", "nothing after a .blend");
        assertRejected("(\"a\",\"b\").blend(x, 1)", "could not convert string to float: 'x'");
        assertRejected("(\"a cat.swap(dog)\", \"b\").blend(1, 1)", ".swap() as part of a Blend");
        assertRejected("a\u000bb", "vertical tab or form feed");
        assertRejected("a.swap(b.swap(c))", "inside another .swap()");
        // compel would compute with these; a non-finite weight can only give NaN conditioning
        assertRejected("(\"a\", \"b\").blend(inf, 1)", "must be finite");
        assertRejected("(\"a\", \"b\").blend(nan, 1)", "must be finite");
    }

    private static void assertRejected(String prompt, String messagePart) {
        SdxlException e = assertThrows(SdxlException.class, () -> CompelParser.parse(prompt));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains(messagePart), e.getMessage());
    }

    @Test
    void deepNestingIsLinearAndBounded() {
        // pyparsing without packrat re-parses nested groups several times per level; the memo keeps this fast
        String nested = "(".repeat(40) + "a" + ")1.1".repeat(40);
        List<Fragment> f = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> single(nested));
        assertEquals("a", f.get(0).text());
        assertEquals(Math.pow(1.1, 40), f.get(0).weight(), 1e-9);
        String tooDeep = "(".repeat(5000) + "a" + ")".repeat(5000);
        SdxlException e = assertThrows(SdxlException.class, () -> CompelParser.parse(tooDeep));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    }

    @Test
    void arbitraryTextNeverCrashes() {
        java.util.Random r = new java.util.Random(42);
        String alphabet = "ab (()).+-,\"\\=0123456789 \t\n\u00e9!";
        for (int n = 0; n < 3000; n++) {
            StringBuilder sb = new StringBuilder();
            int len = r.nextInt(30);
            for (int i = 0; i < len; i++) {
                sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
            }
            try {
                Conjunction c = CompelParser.parse(sb.toString());
                assertTrue(c.parts().size() == c.weights().size());
            } catch (SdxlException e) {
                assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), sb.toString());
            }
        }
    }
}
