package io.sdxl4j.models;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * diffusers' UNet2DConditionModel (tiny SDXL base and refiner) on the reference cases (cases/unet): the noise
 * prediction within 1e-4 absolute (the reference's own fp32-vs-fp64 difference is about 1e-6), including
 * latents whose sides are not a multiple of 2^(levels-1) (explicit upsample sizes).
 */
class UNetReferenceTest {
    private static final double ATOL = 1e-4;
    private static final Map<String, UNet2DConditionModel> MODELS = new HashMap<>();

    static UNet2DConditionModel model(String name, String variant) {
        return MODELS.computeIfAbsent(name + "/" + variant,
                n -> UNet2DConditionModel.load(ReferenceData.root().resolve("models").resolve(name), variant));
    }

    @AfterAll
    static void close() {
        MODELS.values().forEach(UNet2DConditionModel::close);
    }

    @TestFactory
    Stream<DynamicTest> everyCase() {
        return ReferenceData.cases("unet").stream().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> run(c)));
    }

    private static void run(JsonNode c) {
        UNet2DConditionModel model = model(c.get("params").get("model").asText(), null);
        try (SafetensorsFile f = SafetensorsFile.open(ReferenceData.caseFile("unet", c));
             Tensor sample = f.tensor("sample");
             Tensor t = f.tensor("timestep");
             Tensor ehs = f.tensor("encoder_hidden_states");
             Tensor text = f.tensor("text_embeds");
             Tensor ids = f.tensor("time_ids");
             Tensor out = model.forward(sample, t, ehs, text, ids)) {
            TextEncoderReferenceTest.check(c, "out", f, out);
        }
    }
}
