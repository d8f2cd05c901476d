package io.sdxl4j;

import java.awt.image.BufferedImage;
import java.util.Arrays;

/**
 * The {@code image=} of an img2img / refiner call: either pixels [B, 3, H, W] in [0, 1] (diffusers' tensor input;
 * normalised to [-1, 1] and encoded with the VAE), or UNet-space latents [B, 4, h, w] such as the base pipeline's
 * output with {@code outputType(LATENT)} (used as they are). Holds its own copy of the numbers.
 */
public final class ImageInput {
    private final float[] data;
    private final int batch, channels, height, width;

    private ImageInput(float[] data, int batch, int channels, int height, int width) {
        long n = (long) batch * channels * height * width;
        if (batch < 1 || height < 1 || width < 1 || n != data.length) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "image data of " + data.length
                    + " floats does not fit [" + batch + ", " + channels + ", " + height + ", " + width + "]");
        }
        this.data = data;
        this.batch = batch;
        this.channels = channels;
        this.height = height;
        this.width = width;
    }

    /** Pixels [batch, 3, height, width], values in [0, 1] (copied). */
    public static ImageInput pixels(float[] nchw, int batch, int height, int width) {
        return new ImageInput(nchw.clone(), batch, 3, height, width);
    }

    /** An RGB image (alpha dropped), values /255. */
    public static ImageInput of(BufferedImage image) {
        int h = image.getHeight(), w = image.getWidth();
        float[] out = new float[3 * h * w];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int rgb = image.getRGB(x, y);
                out[y * w + x] = ((rgb >> 16) & 0xff) / 255f;
                out[h * w + y * w + x] = ((rgb >> 8) & 0xff) / 255f;
                out[2 * h * w + y * w + x] = (rgb & 0xff) / 255f;
            }
        }
        return new ImageInput(out, 1, 3, h, w);
    }

    /** UNet-space latents [B, 4, h, w] (copied), e.g. {@link GenerationResult#latents()} of the base. */
    public static ImageInput latents(Tensor latents) {
        long[] s = latents.shape();
        if (s.length != 4) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "latents must be [B, 4, h, w], got " + Arrays.toString(s));
        }
        return new ImageInput(latents.toFloatArray(), (int) s[0], (int) s[1], (int) s[2], (int) s[3]);
    }

    /** Latents [batch, channels, h, w] from an array (copied). */
    public static ImageInput latents(float[] data, int batch, int channels, int height, int width) {
        return new ImageInput(data.clone(), batch, channels, height, width);
    }

    public boolean isLatents() {
        return channels != 3;
    }

    public int batch() {
        return batch;
    }

    public int channels() {
        return channels;
    }

    public int height() {
        return height;
    }

    public int width() {
        return width;
    }

    /** A copy of the numbers (NCHW). */
    public float[] data() {
        return data.clone();
    }
}
