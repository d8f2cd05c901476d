package io.sdxl4j;

import java.util.Locale;

/** How a LoRA is applied to the UNet and the text encoders. */
public enum LoraMode {
    /**
     * Fused into the weights (diffusers' {@code fuse_lora}): no cost per step. Loading, rescaling or unloading
     * recomputes the weights the LoRA touches from exact copies of their originals.
     */
    FUSED,
    /**
     * Applied at run time (PEFT's unfused forward): each touched layer computes {@code W x + b + s * (alpha / r) *
     * up(down(x))} beside its unchanged weights, so changing a scale or unloading costs almost nothing, for a few
     * small extra GEMMs per step. LyCORIS LoHa / LoKr keep their scaled full-size delta beside the weight instead.
     */
    UNFUSED;

    /** "fused" or "unfused", any case. */
    public static LoraMode fromName(String name) {
        for (LoraMode m : values()) {
            if (m.name().equalsIgnoreCase(name.trim())) {
                return m;
            }
        }
        throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "unknown LoRA mode '" + name + "' (fused or unfused)");
    }

    /** "fused" / "unfused". */
    public String cliName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
