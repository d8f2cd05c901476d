package io.sdxl4j.cli;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.models.HuggingFaceCache;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * How the command-line tools ({@code generate}, and {@code serve} in the server module) find a model: a
 * {@code --model} argument (single-file checkpoint, diffusers folder or Hugging Face repo id in the cache), else
 * {@code $SDXL4J_MODEL}, else SDXL base in the Hugging Face cache, else the bundled test model (each tool says so
 * in its own words).
 */
public final class ModelArguments {
    /** The model looked for in the Hugging Face cache when none is named. */
    public static final String DEFAULT_REPO = "stabilityai/stable-diffusion-xl-base-1.0";

    private ModelArguments() {}

    /** A single-file checkpoint as it is; a folder or repo id through the Hugging Face cache's rules. */
    public static Path resolve(String pathOrRepo) {
        try {
            Path file = Path.of(pathOrRepo);
            if (Files.isRegularFile(file)) {
                return file;  // a single-file checkpoint
            }
        } catch (InvalidPathException e) {
            // a repo id
        }
        return HuggingFaceCache.fromEnvironment().resolveModelArgument(pathOrRepo, null);
    }

    /** {@code model}, else $SDXL4J_MODEL, else {@link #DEFAULT_REPO} in the cache; empty when none is there. */
    public static Optional<Path> locate(String model) {
        if (model != null) {
            return Optional.of(resolve(model));
        }
        String env = System.getenv("SDXL4J_MODEL");
        if (env != null && !env.isBlank()) {
            return Optional.of(resolve(env));
        }
        try {
            return Optional.of(HuggingFaceCache.fromEnvironment().resolve(DEFAULT_REPO));
        } catch (SdxlException notCached) {
            return Optional.empty();
        }
    }

    /** The bundled test model (system property sdxl4j.bundledModel, set by the launcher); NOT_FOUND saying what to do. */
    public static Path bundledModel() {
        String bundled = System.getProperty("sdxl4j.bundledModel");
        if (bundled == null || !Files.isDirectory(Path.of(bundled))) {
            throw new SdxlException(ErrorCode.NOT_FOUND, "no SDXL model: give --model <folder or repo id>, set SDXL4J_MODEL, "
                    + "or download it with: huggingface-cli download " + DEFAULT_REPO);
        }
        return Path.of(bundled);
    }
}
