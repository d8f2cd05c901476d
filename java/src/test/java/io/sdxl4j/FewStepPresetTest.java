package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.schedulers.Scheduler;
import io.sdxl4j.schedulers.SchedulerConfig;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The few-step presets: the settings the model cards give (guidance off, trailing spacing, the step count), and the
 * trailing scheduler kinds checked against diffusers' timesteps: every case of cases/schedulers that sets
 * timestep_spacing "trailing" on a class one of the kinds uses gives the same timesteps through that kind.
 */
class FewStepPresetTest {
    private static final Path CONFIG = ReferenceData.root().resolve("configs/sdxl-base-1.0/scheduler/scheduler_config.json");

    @Test
    void presetsSetStepsGuidanceAndScheduler() {
        GenerationRequest r = GenerationRequest.builder().prompt("a cat").steps(50).guidanceScale(7.5).build();
        GenerationRequest turbo = FewStepPreset.TURBO.apply(r);
        assertEquals(1, turbo.steps());
        assertEquals(0.0, turbo.guidanceScale());
        assertEquals(SchedulerKind.EULER_A_TRAILING, turbo.scheduler());
        assertEquals(4, FewStepPreset.LIGHTNING.apply(r).steps());
        assertEquals(SchedulerKind.EULER_TRAILING, FewStepPreset.LIGHTNING.apply(r).scheduler());
        assertEquals(8, FewStepPreset.HYPER.apply(r).steps());
        assertEquals(SchedulerKind.DDIM_TRAILING, FewStepPreset.HYPER.apply(r).scheduler());
        assertEquals(java.util.List.of("a cat"), turbo.prompt());
        for (FewStepPreset p : FewStepPreset.values()) {
            assertEquals("trailing", p.scheduler().overrides().get("timestep_spacing"), p.toString());
            assertEquals(p, FewStepPreset.fromName(p.toString().toUpperCase()));
        }
        SdxlException e = assertThrows(SdxlException.class, () -> FewStepPreset.fromName("lcm"));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("turbo, lightning or hyper"), e.getMessage());
        assertEquals(SchedulerKind.EULER_TRAILING, SchedulerKind.fromName("euler_trailing"));
        assertEquals(SchedulerKind.EULER, SchedulerKind.fromName("EulerDiscreteScheduler"), "a class name: its plain kind");
    }

    @Test
    void trailingKindsGiveDiffusersTimesteps() {
        int checked = 0;
        for (JsonNode c : ReferenceData.cases("schedulers")) {
            JsonNode p = c.get("params");
            if (!"trailing".equals(p.path("overrides").path("timestep_spacing").asText()) || p.get("overrides").size() != 1) {
                continue;
            }
            String cls = p.get("class").asText();
            for (SchedulerKind k : new SchedulerKind[] {SchedulerKind.EULER_TRAILING, SchedulerKind.EULER_A_TRAILING,
                    SchedulerKind.DDIM_TRAILING}) {
                if (!k.diffusersClass().equals(cls)) {
                    continue;
                }
                try (Scheduler s = Scheduler.create(SchedulerConfig.fromConfig(cls, CONFIG, k.overrides()))) {
                    s.setTimesteps(p.get("num_inference_steps").asInt());
                    double[] want = ReferenceData.doubles(ReferenceData.caseFile("schedulers", c), "timesteps");
                    assertArrayEquals(want, s.timesteps(), 0.0, c.get("name").asText() + " through " + k);
                    checked++;
                }
            }
        }
        assertTrue(checked > 0, "the reference set has a trailing case for one of the kinds' classes");
    }
}
