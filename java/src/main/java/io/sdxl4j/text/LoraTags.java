package io.sdxl4j.text;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * AUTOMATIC1111's extra-network tags in a prompt: {@code <lora:name:0.8>} (also {@code <lyco:...>}). As A1111 does,
 * every {@code <word:...>} tag is cut out of the prompt text (replaced by nothing, the spaces around it stay) and
 * the LoRA ones are returned with their weights (1.0 when absent). A1111's separate text-encoder / UNet multipliers
 * ({@code <lora:name:te:unet>}, {@code unet=}) are refused: one scale applies to the UNet and both text encoders, as
 * in diffusers.
 */
public final class LoraTags {
    /** A LoRA named in a prompt, with its weight. */
    public record Tag(String name, double weight) {}

    /** The prompt without its tags, and the LoRA tags in prompt order. */
    public record Parsed(String prompt, List<Tag> loras) {}

    // A1111's re_extra_net.
    private static final Pattern EXTRA_NET = Pattern.compile("<(\\w+):([^>]+)>");

    private LoraTags() {}

    public static Parsed parse(String prompt) {
        if (prompt == null) {
            return new Parsed(null, List.of());
        }
        List<Tag> tags = new ArrayList<>();
        Matcher m = EXTRA_NET.matcher(prompt);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String type = m.group(1);
            if (type.equals("lora") || type.equals("lyco")) {
                tags.add(tag(m.group(0), m.group(2)));
            }
            m.appendReplacement(out, "");
        }
        m.appendTail(out);
        return new Parsed(out.toString(), List.copyOf(tags));
    }

    private static Tag tag(String text, String args) {
        String[] items = args.split(":", -1);
        String name = items[0].trim();
        if (name.isEmpty()) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "prompt tag " + text + " names no LoRA");
        }
        if (items.length > 2) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "prompt tag " + text
                    + ": separate text-encoder/UNet multipliers are not supported (one weight: <lora:" + name + ":0.8>)");
        }
        double w = 1.0;
        if (items.length == 2) {
            try {
                w = Double.parseDouble(items[1].trim());
            } catch (NumberFormatException e) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "prompt tag " + text + ": '" + items[1]
                        + "' is not a number");
            }
        }
        return new Tag(name, w);
    }
}
