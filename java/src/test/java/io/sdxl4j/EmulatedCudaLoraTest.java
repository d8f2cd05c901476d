package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * LoRA on the CUDA backend run by the CPU SIMT emulator (see {@link EmulatedCudaPipelineTest} for how this runs), F32:
 * the first pipeline case of cases/lora (kohya SGM names: attn1 q/k/v, which the device runs as one fused GEMM,
 * attn2, GEGLU, LoCon convs, both text encoders) unfused against diffusers within the pipelines group's 1e-3 (the
 * CPU's bound), and the {@code fused_kohya_sgm} record fused: the weights on the device (attn1.to_q is a row slice of
 * the fused q/k/v weight there) within 1e-5 of {@code fuse_lora()}, and the fused image within 1e-3. One generation
 * each: the emulator is slow (native/tests/test_lora.cpp covers F16 and CUDA graphs on the emulator).
 */
class EmulatedCudaLoraTest {
    private static StableDiffusionXL pipe;

    @BeforeAll
    static void onTheEmulatedDevice() {
        String dir = System.getProperty("sdxl4j.emu.dir", "");
        Assumptions.assumeTrue(!dir.isEmpty() && Files.exists(Path.of(dir, "libsdxl.so")),
                "no emulator build of libsdxl in " + dir);
        assertEquals(Device.CUDA, PipelineReferenceTest.device(),
                "run through the emulated-cuda Surefire execution (sdxl4j.test.device=cuda)");
        assertTrue(Sdxl4j.cudaAvailable() && Sdxl4j.cudaStatus().contains("emulator"),
                "the emulator build of libsdxl must be the one loaded, got: " + Sdxl4j.cudaStatus());
        pipe = StableDiffusionXL.load(ReferenceData.root().resolve("models/tiny-sdxl-base"),
                PipelineOptions.defaults().withWatermark(false).withDevice(Device.CUDA));
    }

    @AfterAll
    static void close() {
        if (pipe != null) {
            pipe.close();
            pipe = null;
        }
    }

    private static JsonNode firstCase(String prefix) {
        List<JsonNode> cases = ReferenceData.cases("lora");
        return cases.stream().filter(c -> c.get("name").asText().startsWith(prefix)).findFirst().orElseThrow();
    }

    @Test
    void pipelineCaseUnfused() {
        try {
            LoraReferenceTest.generation(firstCase("lora_kohya_sgm"), pipe, LoraMode.UNFUSED);
        } finally {
            pipe.unloadLoras();
        }
    }

    @Test
    void fusedWeightsOnTheDevice() {
        try {
            LoraReferenceTest.fused(firstCase("fused_kohya"), pipe, LoraMode.FUSED);
        } finally {
            pipe.unloadLoras();
        }
    }
}
