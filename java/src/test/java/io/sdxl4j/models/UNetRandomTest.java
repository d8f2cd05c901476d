package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.DType;
import io.sdxl4j.Device;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.nat.NativeUNetConfig;
import java.lang.reflect.RecordComponent;
import java.nio.file.Path;
import java.util.Objects;
import org.junit.jupiter.api.Test;

/**
 * {@link UNetConfig#sdxlBase()} is the real SDXL base config, and {@link UNet2DConditionModel#random(UNetConfig,
 * long, Device, DType)} places the model where asked or fails clearly before making any weights (the tiny base
 * config keeps the models small; the placement rules do not depend on the size).
 */
class UNetRandomTest {
    private static final Path TINY_UNET = ReferenceData.root().resolve("models/tiny-sdxl-base/unet");

    @Test
    void sdxlBaseEqualsTheRealConfigJsonAndTheNativeConstructor() throws Exception {
        UNetConfig constant = UNetConfig.sdxlBase();
        UNetConfig read = UNetConfig.read(ReferenceData.root().resolve("configs/sdxl-base-1.0/unet/config.json"));
        for (RecordComponent rc : UNetConfig.class.getRecordComponents()) {
            Object a = rc.getAccessor().invoke(constant);
            Object b = rc.getAccessor().invoke(read);
            assertTrue(Objects.deepEquals(a, b), rc.getName() + ": sdxlBase() has " + a + ", config.json " + b);
        }
        Sdxl4j.load();
        try (NativeUNetConfig n = NativeUNetConfig.sdxl_base()) {
            assertArrayEquals(n.block_out_channels().get(), constant.blockOutChannels());
            assertArrayEquals(n.transformer_layers_per_block().get(), constant.transformerLayersPerBlock());
            assertArrayEquals(n.num_attention_heads().get(), constant.numAttentionHeads());
            assertEquals(n.cross_attention_dim(), constant.crossAttentionDim());
            assertEquals(n.projection_class_embeddings_input_dim(), constant.projectionClassEmbeddingsInputDim());
        }
    }

    @Test
    void randomOnTheCpuIsF32AndRuns() {
        UNetConfig config = UNetConfig.read(TINY_UNET.resolve("config.json"));
        try (UNet2DConditionModel a = UNet2DConditionModel.random(config, 3, Device.CPU, DType.F32);
             UNet2DConditionModel b = UNet2DConditionModel.random(config, 3)) {
            assertEquals(Device.CPU, a.device());
            assertEquals(DType.F32, a.dtype());
            assertEquals(Device.CPU, b.device());
            assertEquals(DType.F32, b.dtype());
            long pooled = config.projectionClassEmbeddingsInputDim() - 6 * config.additionTimeEmbedDim();
            long d = config.crossAttentionDim();
            try (Tensor x = Tensor.of(new float[2 * 4 * 8 * 8], 2, 4, 8, 8);
                 Tensor t = Tensor.of(new float[] {500, 500}, 2);
                 Tensor ctx = Tensor.of(new float[(int) (2 * 77 * d)], 2, 77, d);
                 Tensor text = Tensor.of(new float[(int) (2 * pooled)], 2, pooled);
                 Tensor ids = Tensor.of(new float[] {64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64}, 2, 6);
                 Tensor ya = a.forward(x, t, ctx, text, ids);
                 Tensor yb = b.forward(x, t, ctx, text, ids)) {
                assertArrayEquals(new long[] {2, 4, 8, 8}, ya.shape());
                assertEquals(Device.CPU, ya.device());
                assertEquals(DType.F32, ya.dtype());
                assertArrayEquals(yb.toFloatArray(), ya.toFloatArray(), 0f, "same seed, same weights");
            }
        }
    }

    @Test
    void halfPrecisionOnTheCpuIsUnsupported() {
        UNetConfig config = UNetConfig.read(TINY_UNET.resolve("config.json"));
        for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
            SdxlException e = assertThrows(SdxlException.class,
                    () -> UNet2DConditionModel.random(config, 0, Device.CPU, dtype).close());
            assertEquals(ErrorCode.UNSUPPORTED, e.code(), e.toString());
            assertTrue(e.getMessage().contains(dtype.toString()), e.getMessage());
        }
        SdxlException ints = assertThrows(SdxlException.class,
                () -> UNet2DConditionModel.random(config, 0, Device.CPU, DType.I64).close());
        assertEquals(ErrorCode.INVALID_ARGUMENT, ints.code(), ints.toString());
    }

    @Test
    void cudaIsPlacedThereOrIsADeviceErrorWithoutADevice() {
        UNetConfig config = UNetConfig.read(TINY_UNET.resolve("config.json"));
        if (Sdxl4j.cudaAvailable()) { // a GPU machine (or the emulator build): the model is where it was asked to be
            try (UNet2DConditionModel m = UNet2DConditionModel.random(config, 0, Device.CUDA, DType.F16)) {
                assertEquals(Device.CUDA, m.device());
                assertEquals(DType.F16, m.dtype());
            }
            return;
        }
        SdxlException random = assertThrows(SdxlException.class,
                () -> UNet2DConditionModel.random(config, 0, Device.CUDA, DType.F16).close());
        assertEquals(ErrorCode.DEVICE_ERROR, random.code(), random.toString());
        assertTrue(random.getMessage().contains("CUDA requested but unavailable"), random.getMessage());
        // the load path gives the same error
        SdxlException load = assertThrows(SdxlException.class,
                () -> UNet2DConditionModel.load(TINY_UNET, null, Device.CUDA, DType.F32).close());
        assertEquals(ErrorCode.DEVICE_ERROR, load.code(), load.toString());
    }
}
