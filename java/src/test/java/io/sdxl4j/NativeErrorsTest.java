package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.internal.Native;
import io.sdxl4j.io.SafetensorsFile;
import io.sdxl4j.nat.global.sdxl;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The C++ -> Java error path: sdxl::Error reaches Java as SdxlException with its code and message, and bad input never crashes. */
class NativeErrorsTest {

    @Test
    void everyNativeErrorCodeArrivesWithItsMessage() {
        Sdxl4j.load();
        for (ErrorCode code : ErrorCode.values()) {
            String message = "thrown in C++ for " + code + " with ünïcode";
            SdxlException e = assertThrows(SdxlException.class, () -> Native.run(() -> sdxl.raise_error(code.number(), message)));
            assertEquals(code, e.code());
            assertTrue(e.getMessage().endsWith(message), e.getMessage());
        }
    }

    @Test
    void badShapesAreInvalidArgumentNamingTheOp() {
        try (Tensor x = Tensor.of(new float[2 * 3 * 4 * 4], 2, 3, 4, 4);
             Tensor w = Tensor.of(new float[5 * 2 * 3 * 3], 5, 2, 3, 3)) {
            SdxlException e = assertThrows(SdxlException.class, () -> Ops.conv2d(x, w, null, 1, 1));
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            assertTrue(e.getMessage().contains("conv2d"), e.getMessage());
            SdxlException g = assertThrows(SdxlException.class, () -> Ops.groupNorm(x, 2, null, null, 1e-5f));
            assertEquals(ErrorCode.INVALID_ARGUMENT, g.code());
            assertTrue(g.getMessage().contains("group_norm"), g.getMessage());
            SdxlException m = assertThrows(SdxlException.class, () -> Ops.matmul(x, w));
            assertEquals(ErrorCode.INVALID_ARGUMENT, m.code());
        }
    }

    @Test
    void arraysThatDoNotFitTheShapeAreRejected() {
        SdxlException e = assertThrows(SdxlException.class, () -> Tensor.of(new float[5], 2, 3));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        SdxlException neg = assertThrows(SdxlException.class, () -> Tensor.of(new float[0], -1, 0));
        assertEquals(ErrorCode.INVALID_ARGUMENT, neg.code());
        SdxlException bytes = assertThrows(SdxlException.class, () -> Tensor.ofBytes(new byte[7], DType.F32, 2));
        assertEquals(ErrorCode.INVALID_ARGUMENT, bytes.code());
    }

    @Test
    void closedTensorsAreAnErrorAndCloseIsIdempotent() {
        Tensor t = Tensor.of(new float[] {1, 2}, 2);
        t.close();
        t.close();
        SdxlException e = assertThrows(SdxlException.class, t::shape);
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertThrows(SdxlException.class, () -> Ops.silu(t));
    }

    @Test
    void cudaWithoutADeviceIsADeviceErrorOrUnsupported() {
        if (Sdxl4j.cudaAvailable()) {
            return; // covered by the CUDA issue's tests on a GPU machine
        }
        try (Tensor t = Tensor.of(new float[] {1, 2}, 2)) {
            SdxlException e = assertThrows(SdxlException.class, () -> t.to(Device.CUDA));
            assertTrue(e.code() == ErrorCode.DEVICE_ERROR || e.code() == ErrorCode.UNSUPPORTED, e.toString());
        }
    }

    @Test
    void missingAndNonSafetensorsFiles(@TempDir Path dir) throws Exception {
        SdxlException missing = assertThrows(SdxlException.class, () -> SafetensorsFile.open(dir.resolve("nope.safetensors")));
        assertEquals(ErrorCode.NOT_FOUND, missing.code());
        assertTrue(missing.getMessage().contains("nope.safetensors"), missing.getMessage());
        Path text = dir.resolve("config.json");
        Files.writeString(text, "{\"_class_name\": \"UNet2DConditionModel\"}");
        SdxlException bad = assertThrows(SdxlException.class, () -> SafetensorsFile.open(text));
        assertEquals(ErrorCode.BAD_MODEL_FILE, bad.code());
        SdxlException folder = assertThrows(SdxlException.class, () -> SafetensorsFile.open(dir));
        assertTrue(folder.code() == ErrorCode.NOT_FOUND || folder.code() == ErrorCode.BAD_MODEL_FILE, folder.toString());
    }
}
