package io.sdxl4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.Device;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.SdxlException;
import org.junit.jupiter.api.Test;

/** The {@code --device} argument shared by {@code generate} and {@code serve}. */
class ModelArgumentsTest {
    @Test
    void deviceNames() {
        assertEquals(Device.CPU, ModelArguments.device("cpu"));
        assertEquals(Device.CPU, ModelArguments.device(" CPU "));
        assertEquals(Device.CUDA, ModelArguments.device("cuda"));
        assertEquals(Device.CUDA, ModelArguments.device("gpu"));
        for (String bad : new String[] {"tpu", "cuda:", "cuda:-1", "cuda:x", "cuda1", ""}) {
            SdxlException e = assertThrows(SdxlException.class, () -> ModelArguments.device(bad), bad);
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            assertTrue(e.getMessage().contains("cpu, cuda or cuda:N"), e.getMessage());
        }
    }

    @Test
    void cudaWithANumberSelectsThatDevice() {
        if (Sdxl4j.cudaAvailable()) {
            assertEquals(Device.CUDA, ModelArguments.device("cuda:" + Sdxl4j.cudaDevice()));
            return;
        }
        // No device here (or no CUDA in this build): refused with the reason, not ignored.
        SdxlException e = assertThrows(SdxlException.class, () -> ModelArguments.device("cuda:0"));
        assertTrue(e.code() == ErrorCode.DEVICE_ERROR || e.code() == ErrorCode.UNSUPPORTED, e.toString());
    }
}
