package io.sdxl4j;

/**
 * How prompt text is read.
 *
 * <ul>
 *   <li>{@link #PLAIN}: as diffusers' pipelines do: the text is tokenized as it is and cut at 77 tokens.</li>
 *   <li>{@link #COMPEL}: compel 2.0.3's weighting syntax ({@code word+}, {@code (words)1.2}, {@code .blend()},
 *       {@code .and()}), see {@link io.sdxl4j.text.Compel}; with {@code truncateLongPrompts(false)} prompts of
 *       any length are encoded in 75-token chunks.</li>
 *   <li>{@link #A1111}: AUTOMATIC1111 / ComfyUI emphasis ({@code (word:1.2)}, {@code ((word))}, {@code [word]},
 *       {@code BREAK}), 75-token chunks of any number, see {@link io.sdxl4j.text.A1111Prompt}.</li>
 * </ul>
 */
public enum PromptSyntax {
    PLAIN,
    COMPEL,
    A1111
}
