package io.sdxl4j.springai;

import org.springframework.ai.image.ImageGenerationMetadata;

/**
 * What one generated image was made with: the seed of the call and the image's AUTOMATIC1111 infotext (the
 * {@code parameters} text chunk of its PNG).
 */
public record Sdxl4jGenerationMetadata(long seed, String parameters) implements ImageGenerationMetadata {}
