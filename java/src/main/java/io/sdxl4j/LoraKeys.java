package io.sdxl4j;

import io.sdxl4j.io.SafetensorsFile;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * The module names a LoRA file has for one component, read from its header for messages (the native parser owns
 * the formats; this only needs their component prefixes): kohya {@code lora_te1_NAME.*} / {@code lora_te2_NAME.*}
 * / {@code lora_unet_NAME.*}, diffusers/PEFT {@code component.PATH.lora_A.weight}.
 */
final class LoraKeys {
    private LoraKeys() {}

    static List<String> modules(Path file, String component) {
        String kohya = switch (component) {
            case "text_encoder" -> "lora_te1_";
            case "text_encoder_2" -> "lora_te2_";
            default -> "lora_unet_";
        };
        String peft = component + ".";  // "text_encoder." is no prefix of "text_encoder_2."
        Set<String> out = new TreeSet<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (String k : f.names()) {
                if (k.startsWith(kohya)) {
                    int dot = k.indexOf('.');
                    out.add(dot < 0 ? k : k.substring(0, dot));
                } else if (k.startsWith(peft)) {
                    int at = k.lastIndexOf(".lora_");
                    out.add(at < 0 ? k : k.substring(0, at));
                }
            }
        }
        return List.copyOf(out);
    }

    /** 'a', 'b', ... (at most 8, then "and N more"), as the native messages list names. */
    static String listed(List<String> names) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < names.size() && i < 8; i++) {
            b.append(i == 0 ? "'" : ", '").append(names.get(i)).append('\'');
        }
        if (names.size() > 8) {
            b.append(" and ").append(names.size() - 8).append(" more");
        }
        return b.toString();
    }
}
