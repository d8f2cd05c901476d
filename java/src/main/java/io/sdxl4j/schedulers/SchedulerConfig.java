package io.sdxl4j.schedulers;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.nat.LongVector;
import io.sdxl4j.nat.NativeSchedulerConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.bytedeco.javacpp.BytePointer;

/**
 * A scheduler class plus the scheduler_config.json keys (and overrides) it is created with: diffusers'
 * {@code Cls.from_config(config, **overrides)}. Keys the class does not take are ignored, as diffusers does;
 * every key not given takes the class's own default (applied natively, in the scheduler's file).
 *
 * @param className  a diffusers scheduler class, e.g. "EulerDiscreteScheduler"
 * @param values     the given keys with their JSON values (nulls dropped), overrides applied
 */
public record SchedulerConfig(String className, Map<String, JsonNode> values) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public SchedulerConfig {
        values = Map.copyOf(values);
    }

    /** Reads scheduler_config.json for {@code className} (null: the file's own _class_name) with overrides. */
    public static SchedulerConfig fromConfig(String className, Path schedulerConfigJson, Map<String, ?> overrides) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(schedulerConfigJson));
        } catch (NoSuchFileException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, schedulerConfigJson + " does not exist", e);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, schedulerConfigJson + ": not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, schedulerConfigJson + ": must be a JSON object");
        }
        ObjectNode merged = ((ObjectNode) root).deepCopy();
        if (overrides != null) {
            overrides.forEach((k, v) -> merged.set(k, JSON.valueToTree(v)));
        }
        String cls = className != null ? className : merged.path("_class_name").asText("");
        if (cls.isEmpty()) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, schedulerConfigJson + ": no \"_class_name\" and no class given");
        }
        Map<String, JsonNode> values = new TreeMap<>();
        merged.fields().forEachRemaining(e -> {
            if (!e.getKey().startsWith("_") && !e.getValue().isNull()) {
                values.put(e.getKey(), e.getValue());
            }
        });
        return new SchedulerConfig(cls, values);
    }

    /** The native struct (the caller closes it); type errors name the key. */
    public NativeSchedulerConfig toNative() {
        NativeSchedulerConfig n = new NativeSchedulerConfig();
        n.class_name(new BytePointer(className));
        for (Map.Entry<String, JsonNode> e : values.entrySet()) {
            String k = e.getKey();
            JsonNode v = e.getValue();
            switch (k) {
                case "num_train_timesteps" -> n.num_train_timesteps(integer(k, v));
                case "beta_start" -> n.beta_start(number(k, v));
                case "beta_end" -> n.beta_end(number(k, v));
                case "beta_schedule" -> n.beta_schedule(text(k, v));
                case "prediction_type" -> n.prediction_type(text(k, v));
                case "timestep_spacing" -> n.timestep_spacing(text(k, v));
                case "steps_offset" -> n.steps_offset(integer(k, v));
                case "use_karras_sigmas" -> n.use_karras_sigmas(bool(k, v));
                case "clip_sample" -> n.clip_sample(bool(k, v));
                case "clip_sample_range" -> n.clip_sample_range(number(k, v));
                case "set_alpha_to_one" -> n.set_alpha_to_one(bool(k, v));
                case "skip_prk_steps" -> n.skip_prk_steps(bool(k, v));
                case "interpolation_type" -> n.interpolation_type(text(k, v));
                case "timestep_type" -> n.timestep_type(text(k, v));
                case "final_sigmas_type" -> n.final_sigmas_type(text(k, v));
                case "algorithm_type" -> n.algorithm_type(text(k, v));
                case "solver_order" -> n.solver_order(integer(k, v));
                case "solver_type" -> n.solver_type(text(k, v));
                case "lower_order_final" -> n.lower_order_final(bool(k, v));
                case "euler_at_final" -> n.euler_at_final(bool(k, v));
                case "thresholding" -> n.thresholding(bool(k, v));
                case "dynamic_thresholding_ratio" -> n.dynamic_thresholding_ratio(number(k, v));
                case "sample_max_value" -> n.sample_max_value(number(k, v));
                case "variance_type" -> n.variance_type(text(k, v));
                case "rescale_betas_zero_snr" -> n.rescale_betas_zero_snr(bool(k, v));
                case "predict_x0" -> n.predict_x0(bool(k, v));
                case "lambda_min_clipped" -> n.lambda_min_clipped(number(k, v));
                case "noise_sampler_seed" -> n.noise_sampler_seed(integer(k, v));
                case "eta" -> n.eta(number(k, v));
                case "trained_betas" -> n.has_trained_betas(true);
                case "disable_corrector" -> {
                    if (!v.isArray()) {
                        throw bad(k, v, "a list of integers");
                    }
                    long[] a = new long[v.size()];
                    for (int i = 0; i < a.length; i++) {
                        a[i] = integer(k, v.get(i));
                    }
                    n.disable_corrector(new LongVector(a));
                }
                default -> { } // keys other classes take (diffusers ignores them with a warning)
            }
        }
        return n;
    }

    private SdxlException bad(String key, JsonNode v, String want) {
        return new SdxlException(ErrorCode.BAD_MODEL_FILE, className + " config: \"" + key + "\" must be " + want + ", found " + v);
    }

    private long integer(String k, JsonNode v) {
        if (!v.isIntegralNumber() || v.asLong() < 0) {
            throw bad(k, v, "a non-negative integer");
        }
        return v.asLong();
    }

    private double number(String k, JsonNode v) {
        if (!v.isNumber()) {
            throw bad(k, v, "a number");
        }
        return v.asDouble();
    }

    private int bool(String k, JsonNode v) {
        if (!v.isBoolean()) {
            throw bad(k, v, "true or false");
        }
        return v.asBoolean() ? 1 : 0;
    }

    private BytePointer text(String k, JsonNode v) {
        if (!v.isTextual()) {
            throw bad(k, v, "a string");
        }
        return new BytePointer(v.asText());
    }
}
