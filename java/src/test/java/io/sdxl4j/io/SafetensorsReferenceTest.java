package io.sdxl4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.DType;
import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Reads the reference tiny SDXL UNet's weight files (written by a different safetensors writer) and checks the
 * fp16 variant against the fp32 file: same keys and shapes, and every fp16 value is exactly the fp32 value
 * rounded to half (that is how the variant was made), widened back exactly.
 */
class SafetensorsReferenceTest {
    static Path referenceRoot() {
        return Path.of(System.getProperty("sdxl4j.reference", "src/test/resources/reference"));
    }

    @Test
    void fp16VariantIsTheFp32WeightsRoundedToHalf() {
        Path unet = referenceRoot().resolve("models/tiny-sdxl-base/unet");
        try (SafetensorsFile f32 = SafetensorsFile.open(unet.resolve("diffusion_pytorch_model.safetensors"));
             SafetensorsFile f16 = SafetensorsFile.open(unet.resolve("diffusion_pytorch_model.fp16.safetensors"))) {
            assertEquals(f32.names(), f16.names());
            assertTrue(f32.names().contains("conv_in.weight"), "diffusers key names expected");
            double maxDiff = 0;
            long values = 0;
            for (String name : f32.names()) {
                assertEquals("F32", f32.dtypeName(name), name);
                assertEquals("F16", f16.dtypeName(name), name);
                assertArrayEquals(f32.shape(name), f16.shape(name), name);
                try (Tensor a = f32.tensor(name); Tensor h = f16.tensor(name); Tensor wide = f16.tensorF32(name)) {
                    assertEquals(DType.F16, h.dtype());
                    float[] full = a.toFloatArray();
                    float[] widened = wide.toFloatArray();
                    ByteBuffer bits = ByteBuffer.wrap(h.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
                    for (int i = 0; i < full.length; i++) {
                        short b = bits.getShort();
                        assertEquals(Ops.floatToHalfBits(full[i]), b, name + "[" + i + "]");
                        assertEquals(Ops.halfBitsToFloat(b), widened[i], 0f, name + "[" + i + "]");
                        maxDiff = Math.max(maxDiff, Math.abs(widened[i] - full[i]));
                    }
                    values += full.length;
                }
            }
            // The reference index records 4.8804283142089844e-4 as the largest fp16 - fp32 difference.
            assertEquals(4.8804283142089844e-4, maxDiff, 1e-12, "over " + values + " weights");
        }
    }

    @Test
    void tensorsAreViewsOfOneMapping() {
        Path file = referenceRoot().resolve("models/tiny-sdxl-base/unet/diffusion_pytorch_model.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(file);
             Tensor a = f.tensor("conv_in.weight");
             Tensor b = f.tensor("conv_in.bias")) {
            assertTrue(a.sharesStorageWith(b), "zero-copy: both tensors view the same mapped file");
        }
    }
}
