package io.sdxl4j.cli;

import io.sdxl4j.Device;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.SdxlException;
import io.sdxl4j.models.HuggingFaceCache;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;

/**
 * What the command-line tools ({@code generate}, and {@code serve} in the server module) share: the
 * {@code --device} argument, and how they find a model: a
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

    /**
     * The {@code --device} argument: {@code cpu}, {@code cuda} (or {@code gpu}), or {@code cuda:N}, which also makes
     * CUDA device N this process's device ({@link Sdxl4j#selectCudaDevice}), as in PyTorch.
     */
    public static Device device(String s) {
        String d = s.toLowerCase(Locale.ROOT).trim();
        if (d.equals("cpu")) {
            return Device.CPU;
        }
        if (d.equals("cuda") || d.equals("gpu")) {
            return Device.CUDA;
        }
        if (d.matches("cuda:\\d{1,4}")) {
            Sdxl4j.selectCudaDevice(Integer.parseInt(d.substring(5)));
            return Device.CUDA;
        }
        throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "--device must be cpu, cuda or cuda:N (N: a CUDA device "
                + "number, 0 first), got " + s);
    }
}
