package io.sdxl4j.server;

import java.awt.image.BufferedImage;

/**
 * A cheap look at latents while they are denoised, without the VAE: each pixel is a fixed linear map of the four
 * SDXL latent channels to RGB (the coefficients AUTOMATIC1111's "Approx cheap" live preview uses for SDXL), at the
 * latent resolution (1/8 of the image's).
 */
final class LatentPreview {
    private static final double[][] SDXL = {
        {0.3448, 0.4168, 0.4395},
        {-0.1953, -0.0290, 0.0250},
        {0.1074, 0.0886, -0.0163},
        {-0.3730, -0.2499, -0.2088},
    };

    private LatentPreview() {}

    /** The first item of latents [B, 4, h, w] as an RGB image, or null when the shape does not fit. */
    static BufferedImage of(float[] latents, int height, int width) {
        int h = height / 8, w = width / 8, plane = h * w;
        if (latents == null || h == 0 || w == 0 || latents.length < 4 * plane) {
            return null;
        }
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int p = y * w + x;
                int rgb = 0;
                for (int c = 0; c < 3; c++) {
                    double v = 0;
                    for (int l = 0; l < 4; l++) {
                        v += latents[l * plane + p] * SDXL[l][c];
                    }
                    double unit = Math.min(1, Math.max(0, (v + 1) / 2));
                    rgb = (rgb << 8) | (int) (unit * 255);
                }
                img.setRGB(x, y, rgb);
            }
        }
        return img;
    }
}
