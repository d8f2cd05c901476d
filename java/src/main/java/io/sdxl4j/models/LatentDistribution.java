package io.sdxl4j.models;

import io.sdxl4j.Tensor;

/** diffusers' DiagonalGaussianDistribution of the VAE encoder: logvar clamped to [-30, 20], std = exp(logvar / 2). */
public record LatentDistribution(Tensor mean, Tensor logvar, Tensor std) implements AutoCloseable {
    @Override
    public void close() {
        mean.close();
        logvar.close();
        std.close();
    }
}
