package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The pipeline on the second of two emulated CUDA devices ({@code SDXL4J_EMU_DEVICES=2}, own Surefire execution
 * {@code emulated-cuda-device1}: the choice is per process). {@link Sdxl4j#selectCudaDevice} picks device 1 before any
 * CUDA work, as the Spark module does with the GPU a task was given. The emulator fails a kernel issued to device 1's
 * stream from a thread whose current device is 0, so every thread that runs work (JUnit's, a fresh pool thread) must
 * have bound itself to device 1; the first text-to-image reference case must still match diffusers.
 */
class EmulatedCudaSecondDeviceTest extends EmulatedCudaPipelineTest {
    @BeforeAll
    static void onDeviceOne() {
        assertEquals(0, Sdxl4j.cudaDevice(), "nothing chose a device yet");
        Sdxl4j.selectCudaDevice(1);
        assertEquals(1, Sdxl4j.cudaDevice());
        assertTrue(Sdxl4j.cudaStatus().startsWith("2 CUDA device(s); using device 1"), Sdxl4j.cudaStatus());
    }

    @Override
    protected List<JsonNode> selectCases(List<JsonNode> all) {
        return super.selectCases(all).subList(0, 1);  // the text-to-image case: the other two add nothing here
    }

    @Test
    void workFromAFreshThreadRunsOnTheSameDevice() throws Exception {
        PipelineOptions options = PipelineOptions.defaults().withWatermark(false).withDevice(Device.CUDA);
        try (StableDiffusionXL pipe = StableDiffusionXL.load(ReferenceData.root().resolve("models/tiny-sdxl-base"), options)) {
            GenerationRequest request = GenerationRequest.builder().prompt("a red cube").size(64, 64).steps(2).seed(7).build();
            float[] here = pipe.generate(request).pixels();
            ExecutorService pool = Executors.newSingleThreadExecutor();
            try {
                float[] there = pool.submit(() -> pipe.generate(request).pixels()).get();
                assertArrayEquals(here, there, "the same request on a fresh thread gives the same pixels");
            } finally {
                pool.shutdown();
            }
        }
        // One device per process: CUDA work ran on device 1, so moving is refused by name; so is a device that
        // does not exist.
        SdxlException moved = assertThrows(SdxlException.class, () -> Sdxl4j.selectCudaDevice(0));
        assertEquals(ErrorCode.INVALID_ARGUMENT, moved.code());
        assertTrue(moved.getMessage().contains("already runs on CUDA device 1"), moved.getMessage());
        assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(SdxlException.class, () -> Sdxl4j.selectCudaDevice(2)).code());
        Sdxl4j.selectCudaDevice(1);  // the same device again is fine
    }
}
