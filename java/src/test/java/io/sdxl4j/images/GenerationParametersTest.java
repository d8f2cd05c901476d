package io.sdxl4j.images;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The A1111 infotext: exact text, quoting as infotext_utils.quote, and parse(toInfotext()) round trips. */
class GenerationParametersTest {

    private static GenerationParameters.Builder typical() {
        // Set out of order on purpose: the output order is A1111's, not the call order.
        return GenerationParameters.builder()
                .version("sdxl4j 0.1.0")
                .refinerSwitchAt(0.8)
                .refiner("sd_xl_refiner_1.0")
                .seed(123)
                .prompt("a cat, (fluffy:1.2)")
                .negativePrompt("blurry")
                .steps(30)
                .sampler("DPM++ 2M")
                .scheduleType("Karras")
                .cfgScale(7)
                .size(1024, 1024)
                .model("sd_xl_base_1.0");
    }

    @Test
    void writesA1111Format() {
        assertEquals("a cat, (fluffy:1.2)\n"
                + "Negative prompt: blurry\n"
                + "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 123, Size: 1024x1024, "
                + "Model: sd_xl_base_1.0, Refiner: sd_xl_refiner_1.0, Refiner switch at: 0.8, Version: sdxl4j 0.1.0",
                typical().build().toInfotext());
    }

    @Test
    void emptyNegativeAndUnsetKeysAreOmitted() {
        String text = GenerationParameters.builder().prompt("a dog").steps(20).sampler("Euler a").cfgScale(7.5)
                .seed(-1).denoisingStrength(0.35).clipSkip(2).build().toInfotext();
        assertEquals("a dog\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: -1, Denoising strength: 0.35, "
                + "Clip skip: 2", text);
        assertFalse(text.contains("Negative prompt"));
    }

    @Test
    void extraKeysGoBetweenFixedKeysAndVersion() {
        String text = GenerationParameters.builder().prompt("p").version("v").extra("Hires upscale", "2")
                .extra("Steps", "10").extra("Model hash", "abc123").seed(5).refiner("r").build().toInfotext();
        assertEquals("p\nSteps: 10, Seed: 5, Model hash: abc123, Hires upscale: 2, Refiner: r, Version: v", text);
    }

    @Test
    void quotesLikeA1111() {
        assertEquals("plain", GenerationParameters.quote("plain"));
        assertEquals("my\"model", GenerationParameters.quote("my\"model")); // A1111 leaves inner quotes alone
        assertEquals("\"a, b\"", GenerationParameters.quote("a, b"));
        assertEquals("\"C:\\\\models\\\\x.safetensors\"", GenerationParameters.quote("C:\\models\\x.safetensors"));
        assertEquals("\"say \\\"hi\\\", ok\"", GenerationParameters.quote("say \"hi\", ok"));
        assertEquals("\"two\\nlines\"", GenerationParameters.quote("two\nlines"));
        // ensure_ascii=False: non-ASCII stays; control characters are \\u escapes with lower-case hex.
        assertEquals("\"猫, é\"", GenerationParameters.quote("猫, é"));
        assertEquals("\"tab\\t, bell\\u0007, esc\\u001b\"", GenerationParameters.quote("tab\t, bell\u0007, esc\u001b"));
        // sdxl4j's additions, so that parsing gives the value back.
        assertEquals("\"\"", GenerationParameters.quote(""));
        assertEquals("\"\\\"quoted\\\"\"", GenerationParameters.quote("\"quoted\""));
        assertEquals("\" padded \"", GenerationParameters.quote(" padded "));
    }

    @Test
    void numbersAsPythonStr() {
        assertEquals("7", GenerationParameters.formatNumber(7.0));
        assertEquals("7.5", GenerationParameters.formatNumber(7.5));
        assertEquals("0.1", GenerationParameters.formatNumber(0.1));
        assertEquals("0.8", GenerationParameters.formatNumber(0.8));
        assertEquals("0.30000000000000004", GenerationParameters.formatNumber(0.1 + 0.2));
        assertEquals("0.3333333333333333", GenerationParameters.formatNumber(1.0 / 3));
        assertEquals("1e-05", GenerationParameters.formatNumber(1e-5));
        assertEquals("0.0001", GenerationParameters.formatNumber(1e-4));
        assertEquals("-2.5", GenerationParameters.formatNumber(-2.5));
        assertEquals(ErrorCode.INVALID_ARGUMENT,
                assertThrows(SdxlException.class, () -> GenerationParameters.formatNumber(Double.NaN)).code());
    }

    @Test
    void parsesA1111Example() {
        // The example in A1111's parse_generation_parameters docstring.
        GenerationParameters p = GenerationParameters.parse("girl with an artist's beret, determined, blue eyes, "
                + "desert scene, ((eyeshadow)), (coquettish), detailed, intricate\n"
                + "Negative prompt: ugly, fat, obese, (((deformed))), [blurry], bad anatomy, (extra_limb)\n"
                + "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b\n");
        assertTrue(p.prompt().startsWith("girl with an artist's beret"));
        assertTrue(p.prompt().endsWith("intricate"));
        assertEquals("ugly, fat, obese, (((deformed))), [blurry], bad anatomy, (extra_limb)", p.negativePrompt());
        assertEquals(20, p.steps().getAsInt());
        assertEquals("Euler a", p.sampler().orElseThrow());
        assertEquals(7.0, p.cfgScale().getAsDouble());
        assertEquals(965400086L, p.seed().getAsLong());
        assertEquals(512, p.width().getAsInt());
        assertEquals(512, p.height().getAsInt());
        assertEquals("45dee52b", p.get("Model hash").orElseThrow());
        assertEquals(List.of("Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash"),
                List.copyOf(p.parameters().keySet()));
    }

    @Test
    void lastLineWithFewerThanThreeParametersIsPrompt() {
        GenerationParameters p = GenerationParameters.parse("first line\nstyle: oil, light: soft");
        assertEquals("first line\nstyle: oil, light: soft", p.prompt());
        assertTrue(p.parameters().isEmpty());
    }

    @Test
    void multiLineNegativeAndCrLf() {
        GenerationParameters p = GenerationParameters.parse(
                "  line one  \r\nline two\r\nNegative prompt:   bad\r\nworse\r\nSteps: 1, Seed: 2, CFG scale: 3");
        assertEquals("line one\nline two", p.prompt());
        assertEquals("bad\nworse", p.negativePrompt());
        assertEquals(Map.of("Steps", "1", "Seed", "2", "CFG scale", "3"), p.parameters());
    }

    @Test
    void roundTripsTrickyStrings() {
        String[] values = {"my, model", "a: b", "say \"hi\", ok", "\"starts quoted\"", "back\\slash, x",
            "two\nlines", "猫 — ü, ok", "trailing ", " leading", "", "tab\there", "cr\ronly", "comma,", ":",
            "Steps: 99, Seed: 1", "\\\"", "x\u0001y, z", "emoji \uD83D\uDE00, yes"};
        for (String v : values) {
            GenerationParameters original = typical()
                    .prompt("masterpiece, (a cat:1.3), [dog|fox]\nsecond line: with colon, \"quotes\"")
                    .negativePrompt("lowres, \"text\"\nNegative-ish second line")
                    .model(v)
                    .extra("Lora hashes", v)
                    .sampler(v)
                    .build();
            String text = original.toInfotext();
            GenerationParameters back = GenerationParameters.parse(text);
            assertEquals(original, back, "value " + escape(v) + " in\n" + text);
        }
    }

    @Test
    void roundTripsWithoutNegativeAndWithMultilinePrompt() {
        GenerationParameters original = GenerationParameters.builder()
                .prompt("line 1\nline 2, with: colon\nline 3").steps(4).seed(5).cfgScale(6).build();
        assertEquals(original, GenerationParameters.parse(original.toInfotext()));
    }

    @Test
    void badKeysAreRejected() {
        // A1111's key pattern needs two characters, a word character first, and no ':' or ','.
        for (String key : new String[] {"x", " lead", "a:b", "a,b", ""}) {
            assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class,
                    () -> GenerationParameters.builder().extra(key, "v"), "key '" + key + "'").code());
        }
        // Unicode word characters are keys in Python's \w, so they are here.
        assertEquals("p\nSteps: 1, Seed: 2, Größe: 3", GenerationParameters.builder().prompt("p").steps(1).seed(2)
                .extra("Größe", "3").build().toInfotext());
        assertEquals("3", GenerationParameters.parse("p\nSteps: 1, Seed: 2, Größe: 3").get("Größe").orElseThrow());
    }

    @Test
    void pythonStripUsesPythonWhitespace() {
        assertEquals("x", GenerationParameters.pythonStrip("\u00a0\u001c x \u0085\u3000"));
        assertEquals("\u200bx", GenerationParameters.pythonStrip("\u200bx")); // ZWSP is not space in Python
    }

    private static String escape(String s) {
        return s.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t");
    }
}
