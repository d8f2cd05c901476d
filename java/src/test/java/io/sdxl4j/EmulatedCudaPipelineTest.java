package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;

/**
 * Pipeline reference cases on the CUDA backend running on the CPU SIMT emulator (native/src/backends/cuda/emulator):
 * the same kernels nvcc compiles, with the fake CUDA runtime, cuBLAS and cuDNN. Runs only in its own Surefire
 * execution ({@code emulated-cuda} in java/pom.xml), which loads the emulator build of libsdxl
 * ({@code org.bytedeco.javacpp.pathsFirst} + {@code java.library.path}), points {@code SDXL4J_CUDA_LIBS} at the fake
 * libraries and sets {@code sdxl4j.test.device=cuda}.
 *
 * <p>From index.json, the first case of each pipeline kind that has one (text-to-image, base-to-refiner handoff,
 * img2img), with the tolerances of {@link PipelineReferenceTest} (F32 on the device: the same bounds as the CPU).
 */
class EmulatedCudaPipelineTest extends PipelineReferenceTest {
    @BeforeAll
    static void onTheEmulatedDevice() {
        // Where the CUDA toolkit's headers were missing at build time, CMake built no emulator: nothing to run.
        String dir = System.getProperty("sdxl4j.emu.dir", "");
        Assumptions.assumeTrue(!dir.isEmpty() && Files.exists(Path.of(dir, "libsdxl.so")),
                "no emulator build of libsdxl in " + dir);
        assertEquals(Device.CUDA, device(), "run through the emulated-cuda Surefire execution (sdxl4j.test.device=cuda)");
        assertTrue(Sdxl4j.cudaAvailable() && Sdxl4j.cudaStatus().contains("emulator"),
                "the emulator build of libsdxl must be the one loaded, got: " + Sdxl4j.cudaStatus());
    }

    @Override
    protected List<JsonNode> selectCases(List<JsonNode> all) {
        List<JsonNode> picked = new ArrayList<>();
        Set<String> kinds = new LinkedHashSet<>();
        for (JsonNode c : all) {
            String kind = c.get("params").path("pipeline").asText("");
            boolean wanted = kind.equals("StableDiffusionXLPipeline") || kind.equals("StableDiffusionXLImg2ImgPipeline")
                    || kind.contains("->");
            if (wanted && kinds.add(kind.contains("->") ? "handoff" : kind)) picked.add(c);
        }
        assertEquals(3, picked.size(), "index.json should have a text-to-image, a handoff and an img2img case");
        return picked;
    }
}
