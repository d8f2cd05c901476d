package io.sdxl4j.server;

import io.sdxl4j.PromptSyntax;
import io.sdxl4j.SchedulerKind;
import java.awt.image.BufferedImage;
import java.util.List;

/**
 * One generation request as both APIs reduce it: {@code count} images, image i from seed {@code seed + i} (as
 * AUTOMATIC1111 numbers the seeds of a batch), each exactly what the Java API gives for the same request with that
 * seed.
 *
 * @param syntax          how the prompts are read (A1111 emphasis on the A1111 routes, plain text by default on the
 *                        OpenAI route)
 * @param scheduler       null: the model's own scheduler config
 * @param useRefiner      text to image as base + refiner (ensemble of experts), switching at {@code refinerSwitchAt}
 * @param initImages      image to image: image i starts from {@code initImages[i % size]}; null for text to image
 * @param resize          image to image: resize the init images to width x height first (else their own size)
 * @param strength        image to image: denoising strength in (0, 1]
 * @param loras           LoRAs for this request only (A1111 prompt tags), applied to the base model's UNet and text
 *                        encoders while it runs; empty for none
 * @param promptAsWritten the prompt for the infotext (A1111 keeps the tags there); null: {@code prompt}
 */
record ImageSpec(String prompt, String negativePrompt, PromptSyntax syntax, int width, int height, int steps,
                 double guidanceScale,
                 long seed, SchedulerKind scheduler, int count, boolean useRefiner, double refinerSwitchAt,
                 List<BufferedImage> initImages, boolean resize, double strength, double eta, List<LoraUse> loras,
                 String promptAsWritten) {
    /** A LoRA file named by a prompt tag, with the tag's weight. */
    record LoraUse(String name, java.nio.file.Path file, double weight) {}

    boolean img2img() {
        return initImages != null;
    }
}
