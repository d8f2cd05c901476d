package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import java.nio.file.Files;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The variant="fp16" UNet weights (widened to fp32 on the CPU) against the fp32 reference outputs, for every
 * UNet case whose model folder has an fp16 file. Tolerance: each weight carries a rounding error of at most
 * 2^-11 relative; we allow 4 * 2^-11 * max(1, max|ref|) (observed: about 1e-3 on outputs up to 1.7, i.e.
 * ~1.2 * 2^-11 * max|ref|), well above fp32 noise (1e-6) and well below the bf16 error (2e-2).
 */
class UNetFp16VariantTest {

    @TestFactory
    Stream<DynamicTest> everyCaseWithAnFp16File() {
        return ReferenceData.cases("unet").stream()
                .filter(c -> Files.exists(ReferenceData.root().resolve("models").resolve(c.get("params").get("model").asText())
                        .resolve("diffusion_pytorch_model.fp16.safetensors")))
                .map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        try (UNet2DConditionModel model = UNet2DConditionModel.load(
                     ReferenceData.root().resolve("models").resolve(c.get("params").get("model").asText()), "fp16");
             SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile("unet", c));
             Tensor sample = f.tensor("sample");
             Tensor t = f.tensor("timestep");
             Tensor ehs = f.tensor("encoder_hidden_states");
             Tensor text = f.tensor("text_embeds");
             Tensor ids = f.tensor("time_ids");
             Tensor out = model.forward(sample, t, ehs, text, ids);
             Tensor expected = f.tensor("out")) {
            float[] ref = expected.toFloatArray();
            double maxRef = 1;
            for (float v : ref) {
                maxRef = Math.max(maxRef, Math.abs(v));
            }
            double tol = 4 * Math.pow(2, -11) * maxRef;
            double d = ReferenceData.maxAbsDiff(ref, out.toFloatArray());
            System.out.printf("[reference] %s fp16-variant max|diff| = %.3g (tolerance %.3g)%n", c.get("name").asText(), d, tol);
            assertTrue(d <= tol, c.get("name").asText() + ": fp16 variant max |diff| " + d + " > " + tol);
            assertTrue(d > 1e-5, "the fp16 file must really have been used (identical to fp32 otherwise)");
        }
    }
}
