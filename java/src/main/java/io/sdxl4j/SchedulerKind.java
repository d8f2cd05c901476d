package io.sdxl4j;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The samplers people ask for by name, each a diffusers scheduler class plus config overrides applied on top of
 * the model folder's scheduler_config.json (diffusers' {@code Cls.from_config(pipe.scheduler.config, **overrides)}).
 * The names users bring from AUTOMATIC1111 / ComfyUI ("DPM++ 2M Karras", "dpmpp_2m") map to the same entries;
 * see {@link #fromName}. All 14 classes of the SDXL pipeline's {@code compatibles} list are here.
 */
public enum SchedulerKind {
    EULER("EulerDiscreteScheduler", Map.of(), "Euler", "euler"),
    EULER_KARRAS("EulerDiscreteScheduler", Map.of("use_karras_sigmas", true), "Euler Karras", "euler_karras"),
    EULER_A("EulerAncestralDiscreteScheduler", Map.of(), "Euler a", "euler_ancestral"),
    HEUN("HeunDiscreteScheduler", Map.of(), "Heun", "heun"),
    DPMPP_2M("DPMSolverMultistepScheduler", Map.of(), "DPM++ 2M", "dpmpp_2m"),
    DPMPP_2M_KARRAS("DPMSolverMultistepScheduler", Map.of("use_karras_sigmas", true), "DPM++ 2M Karras", "dpmpp_2m_karras"),
    DPMPP_2M_SDE("DPMSolverMultistepScheduler", Map.of("algorithm_type", "sde-dpmsolver++"), "DPM++ 2M SDE", "dpmpp_2m_sde"),
    DPMPP_2M_SDE_KARRAS("DPMSolverMultistepScheduler", Map.of("algorithm_type", "sde-dpmsolver++", "use_karras_sigmas", true),
            "DPM++ 2M SDE Karras", "dpmpp_2m_sde_karras"),
    DPMPP_SDE("DPMSolverSDEScheduler", Map.of(), "DPM++ SDE", "dpmpp_sde"),
    DPMPP_SDE_KARRAS("DPMSolverSDEScheduler", Map.of("use_karras_sigmas", true), "DPM++ SDE Karras", "dpmpp_sde_karras"),
    DPM_SINGLESTEP("DPMSolverSinglestepScheduler", Map.of(), "DPM++ 2S", "dpmpp_2s"),
    DPM2("KDPM2DiscreteScheduler", Map.of(), "DPM2", "dpm_2"),
    DPM2_KARRAS("KDPM2DiscreteScheduler", Map.of("use_karras_sigmas", true), "DPM2 Karras", "dpm_2_karras"),
    DPM2_A("KDPM2AncestralDiscreteScheduler", Map.of(), "DPM2 a", "dpm_2_ancestral"),
    DPM2_A_KARRAS("KDPM2AncestralDiscreteScheduler", Map.of("use_karras_sigmas", true), "DPM2 a Karras", "dpm_2_ancestral_karras"),
    LMS("LMSDiscreteScheduler", Map.of(), "LMS", "lms"),
    LMS_KARRAS("LMSDiscreteScheduler", Map.of("use_karras_sigmas", true), "LMS Karras", "lms_karras"),
    DDIM("DDIMScheduler", Map.of(), "DDIM", "ddim"),
    PNDM("PNDMScheduler", Map.of(), "PLMS", "pndm"),
    DDPM("DDPMScheduler", Map.of(), "DDPM", "ddpm"),
    UNIPC("UniPCMultistepScheduler", Map.of(), "UniPC", "uni_pc"),
    DEIS("DEISMultistepScheduler", Map.of(), "DEIS", "deis"),
    // "trailing" timestep spacing (timesteps end at 999: the few-step SDXL-Turbo/Lightning/Hyper models need it;
    // ComfyUI's sgm_uniform is the analogue there, with fractional instead of rounded timesteps).
    EULER_TRAILING("EulerDiscreteScheduler", Map.of("timestep_spacing", "trailing"), "Euler Trailing", "euler_trailing"),
    EULER_A_TRAILING("EulerAncestralDiscreteScheduler", Map.of("timestep_spacing", "trailing"), "Euler a Trailing",
            "euler_ancestral_trailing"),
    DDIM_TRAILING("DDIMScheduler", Map.of("timestep_spacing", "trailing"), "DDIM Trailing", "ddim_trailing");

    private final String diffusersClass;
    private final Map<String, Object> overrides;
    private final String a1111Name;
    private final String comfyName;

    SchedulerKind(String diffusersClass, Map<String, Object> overrides, String a1111Name, String comfyName) {
        this.diffusersClass = diffusersClass;
        this.overrides = overrides;
        this.a1111Name = a1111Name;
        this.comfyName = comfyName;
    }

    /**
     * The scheduler classes an SDXL pipeline can swap in (diffusers' {@code pipeline.scheduler.compatibles}): all
     * 14, each runnable with {@code scheduler(fromName(className))} or any kind of that class.
     */
    public static java.util.List<String> compatibles() {
        return java.util.Arrays.stream(values()).map(SchedulerKind::diffusersClass).distinct().sorted().toList();
    }

    /** The diffusers class, e.g. "DPMSolverMultistepScheduler". */
    public String diffusersClass() {
        return diffusersClass;
    }

    /** Config keys set on top of the model's scheduler_config.json. */
    public Map<String, Object> overrides() {
        return overrides;
    }

    /** The sampler's name in AUTOMATIC1111's UI and infotext ("DPM++ 2M Karras"). */
    public String displayName() {
        return a1111Name;
    }

    /**
     * Finds a kind by its enum name ("DPMPP_2M_KARRAS"), AUTOMATIC1111 name ("DPM++ 2M Karras"), ComfyUI sampler name
     * ("dpmpp_2m" plus "_karras"), or diffusers class name ("HeunDiscreteScheduler": that class with no overrides).
     * Case, spaces, dashes and underscores do not matter.
     *
     * @throws SdxlException INVALID_ARGUMENT listing the known names
     */
    public static SchedulerKind fromName(String name) {
        if (name != null) {
            String key = normalise(name);
            for (SchedulerKind k : values()) {
                if (key.equals(normalise(k.name())) || key.equals(normalise(k.a1111Name)) || key.equals(normalise(k.comfyName))) {
                    return k;
                }
            }
            for (SchedulerKind k : values()) {  // a class name: the first (plain) entry of that class
                if (key.equals(normalise(k.diffusersClass))) {
                    return k;
                }
            }
        }
        List<String> names = new ArrayList<>();
        for (SchedulerKind k : values()) {
            names.add(k.name().toLowerCase(Locale.ROOT));
        }
        throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "unknown scheduler \"" + name + "\"; use one of "
                + String.join(", ", names) + ", an AUTOMATIC1111 sampler name such as \"DPM++ 2M Karras\", or a diffusers class name");
    }

    /**
     * The kind a scheduler config amounts to (its class with the most of a kind's overrides set to the same
     * values), for display; null when no kind uses the class.
     */
    public static SchedulerKind describe(String className, Map<String, com.fasterxml.jackson.databind.JsonNode> config) {
        SchedulerKind best = null;
        int bestMatches = -1;
        for (SchedulerKind k : values()) {
            if (!k.diffusersClass.equals(className)) {
                continue;
            }
            boolean all = k.overrides.entrySet().stream().allMatch(e -> config.containsKey(e.getKey())
                    && config.get(e.getKey()).asText().equals(String.valueOf(e.getValue())));
            if (all && k.overrides.size() > bestMatches) {
                best = k;
                bestMatches = k.overrides.size();
            }
        }
        return best;
    }

    private static String normalise(String s) {
        return s.toLowerCase(Locale.ROOT).replace("+", "p").replaceAll("[\\s_\\-]", "");
    }
}
