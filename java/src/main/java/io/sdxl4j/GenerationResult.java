package io.sdxl4j;

import io.sdxl4j.images.GenerationParameters;
import io.sdxl4j.images.Images;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;

/**
 * What a pipeline call returns. Plain Java arrays (copies made once, when the call ends), so nothing here needs
 * closing. Images are diffusers' {@code output_type="np"} values: [N, H, W, 3] floats in [0, 1];
 * {@link #image(int)} converts one to 8 bits as diffusers' {@code numpy_to_pil} does.
 */
public final class GenerationResult {
    private final float[] latents;
    private final long[] latentShape;
    private final float[] pixels;
    private final int count, height, width;
    private final long seed;
    private final double[] timesteps;
    private final String schedulerName;
    private final GenerationRequest request;

    GenerationResult(float[] latents, long[] latentShape, float[] pixels, int height, int width, long seed,
                     double[] timesteps, String schedulerName, GenerationRequest request) {
        this.request = request;
        this.latents = latents;
        this.latentShape = latentShape;
        this.pixels = pixels;
        this.count = (int) latentShape[0];
        this.height = height;
        this.width = width;
        this.seed = seed;
        this.timesteps = timesteps;
        this.schedulerName = schedulerName;
    }

    /** Number of images (batch x images per prompt). */
    public int count() {
        return count;
    }

    public int height() {
        return height;
    }

    public int width() {
        return width;
    }

    /** The final latents [N, 4, h, w] in UNet space (not divided by scaling_factor); a copy. */
    public float[] latents() {
        return latents.clone();
    }

    public long[] latentShape() {
        return latentShape.clone();
    }

    /** A new tensor holding the final latents (the caller closes it), e.g. for {@link ImageInput#latents(Tensor)}. */
    public Tensor latentsTensor() {
        return Tensor.of(latents, latentShape);
    }

    /** Whether images were decoded (false for {@code Output.LATENT}). */
    public boolean hasImages() {
        return pixels != null;
    }

    /** All images, [N, H, W, 3] floats in [0, 1]; a copy. */
    public float[] pixels() {
        requireImages();
        return pixels.clone();
    }

    /** Image i as 8-bit RGB: {@code round(x * 255)} with numpy's half-to-even rounding. */
    public BufferedImage image(int i) {
        requireImages();
        if (i < 0 || i >= count) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "image " + i + " of " + count);
        }
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        int base = i * height * width * 3;
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int p = base + (y * width + x) * 3;
                img.setRGB(x, y, (Images.toByte(pixels[p]) << 16) | (Images.toByte(pixels[p + 1]) << 8)
                        | Images.toByte(pixels[p + 2]));
            }
        }
        return img;
    }

    public List<BufferedImage> images() {
        List<BufferedImage> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(image(i));
        }
        return out;
    }

    /** The seed of the generator when the call created it; for a caller's generator its initial seed. */
    public long seed() {
        return seed;
    }

    /** The timesteps this call ran, in order. */
    public double[] timesteps() {
        return timesteps.clone();
    }

    /** The scheduler that ran, e.g. "EulerDiscreteScheduler" or an AUTOMATIC1111 name for a chosen kind. */
    public String schedulerName() {
        return schedulerName;
    }

    /** The request this result answers. */
    public GenerationRequest request() {
        return request;
    }

    /**
     * AUTOMATIC1111's generation parameters of image i (what its PNG "parameters" chunk holds): the prompt of
     * that image's batch item, the negative prompt, steps, sampler, CFG scale, seed, size and this library's
     * version; add fields such as the model name with {@code toBuilder}-style extras before writing if needed.
     */
    public GenerationParameters parameters(int i) {
        return parametersBuilder(i).build();
    }

    /** {@link #parameters(int)} before build(), to add fields such as the model or refiner name. */
    public GenerationParameters.Builder parametersBuilder(int i) {
        GenerationParameters.Builder p = GenerationParameters.builder().steps(request.steps()).sampler(schedulerName)
                .cfgScale(request.guidanceScale()).seed(seed).size(width, height).version("sdxl4j " + Sdxl4j.version());
        int perPrompt = Math.max(1, request.imagesPerPrompt());
        if (request.prompt() != null) {
            p.prompt(request.prompt().get(Math.min(request.prompt().size() - 1, i / perPrompt)));
        }
        if (request.negativePrompt() != null) {
            p.negativePrompt(request.negativePrompt().get(Math.min(request.negativePrompt().size() - 1, i / perPrompt)));
        }
        if (request.image() != null && request.denoisingStart() == null) {
            p.denoisingStrength(request.strength());
        }
        return p;
    }

    /** Writes image i as a PNG carrying {@link #parameters(int)} in its "parameters" text chunk. */
    public void savePng(int i, java.nio.file.Path file) {
        Images.writePng(image(i), file, java.util.Map.of("parameters", parameters(i).toInfotext()));
    }

    /** Image i as the bytes of the PNG {@link #savePng} writes (with its "parameters" text chunk). */
    public byte[] pngBytes(int i) {
        return Images.pngBytes(image(i), java.util.Map.of("parameters", parameters(i).toInfotext()));
    }

    private void requireImages() {
        if (pixels == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "this result holds latents only (Output.LATENT)");
        }
    }
}
