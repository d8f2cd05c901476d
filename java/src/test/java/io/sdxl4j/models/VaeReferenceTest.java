package io.sdxl4j.models;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.Generator;
import io.sdxl4j.Ops;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * diffusers' AutoencoderKL (tiny SDXL VAE) on the reference cases (cases/vae), within 1e-4 absolute (the
 * reference's own fp32-vs-fp64 difference is up to 7.3e-6): decode cases compare the image from
 * decoder_input; encode cases compare the latent distribution's mean, std and logvar, and
 * latent_dist.sample(generator) = mean + std * randn(mean.shape, generator=manual_seed(sample_seed)) with our
 * torch-compatible {@link Generator}, and scaled_sample = sample * scaling_factor (what img2img uses).
 */
class VaeReferenceTest {
    private static AutoencoderKL vae;

    @BeforeAll
    static void load() {
        vae = AutoencoderKL.load(ReferenceData.root().resolve("models/tiny-sdxl-base/vae"), null);
    }

    @AfterAll
    static void close() {
        vae.close();
    }

    @TestFactory
    Stream<DynamicTest> everyCase() {
        return ReferenceData.cases("vae").stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        try (SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile("vae", c))) {
            if (f.contains("decoder_input")) {
                try (Tensor z = f.tensor("decoder_input"); Tensor image = vae.decode(z)) {
                    TextEncoderReferenceTest.check(c, "out", f, image);
                }
            } else {
                try (Tensor image = f.tensor("image"); LatentDistribution d = vae.encode(image)) {
                    TextEncoderReferenceTest.check(c, "mean", f, d.mean());
                    TextEncoderReferenceTest.check(c, "std", f, d.std());
                    TextEncoderReferenceTest.check(c, "logvar", f, d.logvar());
                    // DiagonalGaussianDistribution.sample: randn_tensor(mean.shape, generator) with one generator.
                    long seed = c.get("params").get("sample_seed").asLong();
                    try (Generator g = Generator.seeded(seed); Tensor noise = g.randn(d.mean().shape());
                            Tensor spread = Ops.mul(d.std(), noise); Tensor sample = Ops.add(d.mean(), spread);
                            Tensor scaled = Ops.scale(sample, (float) vae.config().scalingFactor(), 0f)) {
                        TextEncoderReferenceTest.check(c, "sample", f, sample);
                        TextEncoderReferenceTest.check(c, "scaled_sample", f, scaled);
                    }
                }
            }
        }
    }
}
