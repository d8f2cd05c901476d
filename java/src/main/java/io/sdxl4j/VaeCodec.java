package io.sdxl4j;

import io.sdxl4j.images.InvisibleWatermark;
import io.sdxl4j.models.AutoencoderKL;
import io.sdxl4j.models.LatentDistribution;
import io.sdxl4j.models.VaeConfig;
import io.sdxl4j.models.VaeTiling;

/**
 * The VAE's part of a generation: img2img's input image to scaled latents, and the final latents to an image
 * (decode, invisible watermark, postprocess), each as one phase that holds the VAE (offload loads it for it).
 */
final class VaeCodec {
    private static final InvisibleWatermark WATERMARK = InvisibleWatermark.sdxl();

    private final Slot<AutoencoderKL> vae;
    private final VaeConfig vaeConfig;
    private final VaeTiling tiling;

    VaeCodec(Slot<AutoencoderKL> vae, VaeConfig vaeConfig, VaeTiling tiling) {
        this.vae = vae;
        this.vaeConfig = vaeConfig;
        this.tiling = tiling;
    }

    /**
     * img2img's init latents before tiling and noise: latents are used as they are; pixels are normalised to
     * [-1, 1], encoded, sampled with the generator (before the noise draw) and scaled by scaling_factor.
     */
    float[] encode(ImageInput img, Generator g) {
        if (img.isLatents()) {
            return img.data();
        }
        float[] init;
        float[] px = img.data();
        for (int i = 0; i < px.length; i++) {
            px[i] = 2.0f * px[i] - 1.0f;  // VaeImageProcessor.normalize
        }
        try (Tensor image = Tensor.of(px, img.batch(), 3, img.height(), img.width());
             VaeUse use = new VaeUse(vae);
             LatentDistribution dist = use.model.encode(image, tiling);
             Tensor noise = g.randn(dist.mean().shape())) {
            float[] mean = dist.mean().toFloatArray();
            float[] std = dist.std().toFloatArray();
            float[] eps = noise.toFloatArray();
            float sf = (float) vaeConfig.scalingFactor();
            init = new float[mean.length];
            for (int i = 0; i < init.length; i++) {
                float sample = mean[i] + std[i] * eps[i];  // DiagonalGaussianDistribution.sample
                init[i] = sf * sample;
            }
        }
        return init;
    }

    /** latents / scaling_factor -> VAE decode -> watermark -> (x / 2 + 0.5).clamp(0, 1) as [N, H, W, 3]. */
    float[] decode(float[] latents, long[] shape, Plan plan) {
        float sf = (float) vaeConfig.scalingFactor();
        float[] z = new float[latents.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = latents[i] / sf;
        }
        float[] img;
        try (Tensor zt = Tensor.of(z, shape); VaeUse use = new VaeUse(vae); Tensor decoded = use.model.decode(zt, tiling)) {
            img = decoded.toFloatArray();
        }
        int n = (int) shape[0];
        int h = plan.height, w = plan.width;
        if (plan.watermark) {
            img = WATERMARK.apply(img, n, h, w);
        }
        float[] out = new float[img.length];
        int plane = h * w;
        for (int b = 0; b < n; b++) {
            for (int c = 0; c < 3; c++) {
                for (int i = 0; i < plane; i++) {
                    float v = img[(b * 3 + c) * plane + i] / 2.0f + 0.5f;
                    out[(b * plane + i) * 3 + c] = v < 0f ? 0f : (v > 1f ? 1f : v);  // NaN stays NaN
                }
            }
        }
        return out;
    }

    /** The VAE for one encode or decode (try-with-resources: released after). */
    private static final class VaeUse implements AutoCloseable {
        final AutoencoderKL model;
        private final Slot<AutoencoderKL> slot;

        VaeUse(Slot<AutoencoderKL> slot) {
            this.slot = slot;
            this.model = slot.acquire();
        }

        @Override
        public void close() {
            slot.release();
        }
    }
}
