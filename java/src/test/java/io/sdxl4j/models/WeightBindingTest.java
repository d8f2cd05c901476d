package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import io.sdxl4j.io.SafetensorsWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Weights bind strictly by diffusers key: a missing, extra or mis-shaped tensor is BAD_MODEL_FILE naming the full key. */
class WeightBindingTest {
    private static final Path VAE = ReferenceData.root().resolve("models/tiny-sdxl-base/vae");

    @Test
    void missingExtraAndMisshapedTensorsNameTheKey(@TempDir Path dir) throws Exception {
        String key = "decoder.up_blocks.1.resnets.2.conv1.weight";
        expect(dir, key, w -> w.remove(key).close());
        expect(dir, "encoder.down_blocks.0.extra.weight", w -> w.put("encoder.down_blocks.0.extra.weight", Tensor.of(new float[] {1}, 1)));
        expect(dir, "quant_conv.bias", w -> {
            w.remove("quant_conv.bias").close();
            w.put("quant_conv.bias", Tensor.of(new float[9], 9));
        });
    }

    private static void expect(Path dir, String key, Consumer<Map<String, Tensor>> edit) throws Exception {
        Map<String, Tensor> weights = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(VAE.resolve("diffusion_pytorch_model.safetensors"))) {
            for (String name : f.names()) {
                weights.put(name, f.tensor(name));
            }
        }
        edit.accept(weights);
        Path folder = Files.createDirectories(dir.resolve("vae-" + Math.abs(key.hashCode())));
        Files.copy(VAE.resolve("config.json"), folder.resolve("config.json"));
        SafetensorsWriter.write(folder.resolve("diffusion_pytorch_model.safetensors"), weights, Map.of());
        weights.values().forEach(Tensor::close);
        SdxlException e = assertThrows(SdxlException.class, () -> AutoencoderKL.load(folder, null).close());
        assertEquals(ErrorCode.BAD_MODEL_FILE, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains("'" + key + "'"), e.getMessage());
    }

    @Test
    void aMissingVariantIsNotFoundAndSaysSo() {
        SdxlException e = assertThrows(SdxlException.class, () -> AutoencoderKL.load(VAE, "fp16"));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("fp16"), e.getMessage());
    }
}
