package io.sdxl4j.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.sdxl4j.SdxlException;
import java.util.List;
import org.junit.jupiter.api.Test;

class LoraTagsTest {
    @Test
    void cutsTagsOutAsA1111() {
        LoraTags.Parsed p = LoraTags.parse("a <lora:detail:0.8> cat, <lora:style> <hypernet:h:1> x");
        // A1111 replaces each <word:...> by nothing; the spaces around stay.
        assertEquals("a  cat,   x", p.prompt());
        assertEquals(List.of(new LoraTags.Tag("detail", 0.8), new LoraTags.Tag("style", 1.0)), p.loras());
        assertEquals("plain (x:1.2)", LoraTags.parse("plain (x:1.2)").prompt());
        assertEquals(List.of(new LoraTags.Tag("a", -0.5)), LoraTags.parse("<lyco:a:-0.5>").loras());
    }

    @Test
    void refusesWhatItCannotHonour() {
        assertThrows(SdxlException.class, () -> LoraTags.parse("<lora:a:0.5:1.0>"));
        assertThrows(SdxlException.class, () -> LoraTags.parse("<lora:a:much>"));
        assertThrows(SdxlException.class, () -> LoraTags.parse("<lora: :1>"));
    }
}
