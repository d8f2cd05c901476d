package io.sdxl4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;

/**
 * Which CUDA device a task's pipeline uses: the GPU Spark's scheduler assigned to the task. Local mode has no GPU
 * scheduling, so the task resources are built here as an executor would receive them from the discovery script.
 */
class PipelineHolderTest {
    @Test
    void theTasksGpuBecomesTheProcessDevice() {
        List<Integer> selected = new ArrayList<>();
        Map<String, ResourceInformation> resources = Map.of("gpu", new ResourceInformation("gpu", new String[] {"3"}));
        assertEquals(OptionalInt.of(3), PipelineHolder.useAssignedGpu(resources, selected::add));
        // A task given two GPUs uses the first; the pipeline is one per process.
        resources = Map.of("gpu", new ResourceInformation("gpu", new String[] {" 1", "2"}));
        assertEquals(OptionalInt.of(1), PipelineHolder.useAssignedGpu(resources, selected::add));
        assertEquals(List.of(3, 1), selected);
    }

    @Test
    void withoutGpuSchedulingNothingIsSelected() {
        List<Integer> selected = new ArrayList<>();
        assertEquals(OptionalInt.empty(), PipelineHolder.useAssignedGpu(Map.of(), selected::add));
        assertEquals(OptionalInt.empty(), PipelineHolder.useAssignedGpu(null, selected::add));
        assertEquals(OptionalInt.empty(), PipelineHolder.useAssignedGpu(
                Map.of("fpga", new ResourceInformation("fpga", new String[] {"0"})), selected::add));
        assertEquals(OptionalInt.empty(), PipelineHolder.useAssignedGpu(
                Map.of("gpu", new ResourceInformation("gpu", new String[0])), selected::add));
        assertTrue(selected.isEmpty());
    }

    @Test
    void anAddressThatIsNotADeviceNumberIsRefusedByName() {
        Map<String, ResourceInformation> resources = Map.of("gpu",
                new ResourceInformation("gpu", new String[] {"GPU-5f3c2a9e"}));
        SdxlException e = assertThrows(SdxlException.class, () -> PipelineHolder.useAssignedGpu(resources, d -> { }));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("GPU-5f3c2a9e") && e.getMessage().contains("discovery script"), e.getMessage());
    }
}
