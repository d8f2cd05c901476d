package io.sdxl4j;

import java.util.Objects;

/**
 * Precomputed text conditioning, as diffusers' {@code prompt_embeds=}, {@code pooled_prompt_embeds=},
 * {@code negative_prompt_embeds=}, {@code negative_pooled_prompt_embeds=} (e.g. from {@link io.sdxl4j.text.Compel}).
 * The tensors stay the caller's; the pipeline copies what it needs.
 *
 * @param promptEmbeds               [B, L, D] (D = 2048 for the SDXL base, 1280 for the refiner; L a multiple of 77)
 * @param pooledPromptEmbeds         [B, P] (P = 1280)
 * @param negativePromptEmbeds       [B, L, D] or null (then zeros or the empty prompt, as diffusers decides)
 * @param negativePooledPromptEmbeds [B, P] or null; required when negativePromptEmbeds is given
 */
public record PromptEmbeddings(Tensor promptEmbeds, Tensor pooledPromptEmbeds, Tensor negativePromptEmbeds,
                               Tensor negativePooledPromptEmbeds) {
    public PromptEmbeddings {
        Objects.requireNonNull(promptEmbeds, "promptEmbeds");
        Objects.requireNonNull(pooledPromptEmbeds, "pooledPromptEmbeds (SDXL needs the pooled embedding too)");
        if (negativePromptEmbeds != null && negativePooledPromptEmbeds == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                    "negativePromptEmbeds given without negativePooledPromptEmbeds; SDXL needs both");
        }
    }

    public PromptEmbeddings(Tensor promptEmbeds, Tensor pooledPromptEmbeds) {
        this(promptEmbeds, pooledPromptEmbeds, null, null);
    }
}
