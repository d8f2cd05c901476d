package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * The real SDXL 1.0 base and refiner configs shipped in the jar (model_index.json, the component config.json files,
 * the scheduler config and both tokenizers with CLIP's vocab.json/merges.txt; provenance in
 * {@code io/sdxl4j/configs/SOURCES.md}), for single-file checkpoints loaded without a config folder, as diffusers'
 * {@code from_single_file} fetches them for the detected model type. Extracted once per JVM into a temporary
 * diffusers-style folder (removed at exit).
 */
public final class BundledConfigs {
    private static final String ROOT = "/io/sdxl4j/configs/";
    private static final List<String> BASE = List.of("model_index.json", "scheduler/scheduler_config.json",
            "text_encoder/config.json", "text_encoder_2/config.json", "tokenizer/special_tokens_map.json",
            "tokenizer/tokenizer_config.json", "tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer_config.json",
            "unet/config.json", "vae/config.json");
    private static final List<String> REFINER = List.of("model_index.json", "scheduler/scheduler_config.json",
            "text_encoder_2/config.json", "tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer_config.json",
            "unet/config.json", "vae/config.json");
    private static Path base;
    private static Path refiner;

    private BundledConfigs() {}

    /** The folder of the SDXL 1.0 base ({@code refiner} false) or refiner configs. */
    public static synchronized Path folder(boolean isRefiner) {
        if (isRefiner) {
            if (refiner == null) {
                refiner = extract("sdxl-refiner-1.0", REFINER, List.of("tokenizer_2"));
            }
            return refiner;
        }
        if (base == null) {
            base = extract("sdxl-base-1.0", BASE, List.of("tokenizer", "tokenizer_2"));
        }
        return base;
    }

    private static Path extract(String name, List<String> files, List<String> tokenizers) {
        try {
            Path dir = Files.createTempDirectory("sdxl4j-" + name + "-");
            for (String f : files) {
                copy(ROOT + name + "/" + f, dir.resolve(f));
            }
            // Both SDXL tokenizers use CLIP's vocabulary and merges (one copy in the jar).
            for (String t : tokenizers) {
                copy(ROOT + "vocab.json", dir.resolve(t).resolve("vocab.json"));
                copy(ROOT + "merges.txt", dir.resolve(t).resolve("merges.txt"));
            }
            deleteOnExit(dir);
            return dir;
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, "cannot extract the bundled SDXL configs: " + e.getMessage()
                    + "; give a config folder (a diffusers SDXL folder) instead", e);
        }
    }

    private static void copy(String resource, Path target) throws IOException {
        try (InputStream in = BundledConfigs.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IOException("resource " + resource + " is missing from the jar");
            }
            Files.createDirectories(target.getParent());
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static void deleteOnExit(Path dir) throws IOException {
        // Registered parents first: deleteOnExit runs in reverse order, so children go before their folders.
        dir.toFile().deleteOnExit();
        try (var walk = Files.walk(dir)) {
            walk.skip(1).forEach(p -> p.toFile().deleteOnExit());
        }
    }
}
