package io.sdxl4j;

import java.nio.file.Path;

/**
 * The SDXL refiner / image-to-image pipeline, diffusers' {@code StableDiffusionXLImg2ImgPipeline}: continues the
 * base's latents with {@code denoisingStart} (ensemble of experts: no noise added, the same generator continuing),
 * or refines an image with {@code strength} (SDEdit: encode, add noise at the strength's timestep, denoise).
 *
 * <pre>{@code
 * try (StableDiffusionXL base = StableDiffusionXL.load(basePath);
 *      Refiner refiner = base.loadRefiner(refinerPath, PipelineOptions.defaults());
 *      Generator g = Generator.seeded(123)) {
 *     GenerationResult latents = base.generate(request.toBuilder().denoisingEnd(0.8)
 *             .output(GenerationRequest.Output.LATENT).build(), g, null, null);
 *     GenerationResult image = refiner.generate(GenerationRequest.builder().prompt(prompt).steps(40)
 *             .denoisingStart(0.8).image(ImageInput.latents(latents.latents(), ...)).build(), g, null, null);
 * }
 * }</pre>
 */
public final class Refiner implements AutoCloseable {
    private final SdxlEngine engine;

    Refiner(SdxlEngine engine) {
        this.engine = engine;
    }

    /** Loads a refiner (or any SDXL folder for img2img) with its own text_encoder_2 and VAE. */
    public static Refiner load(Path folder) {
        return load(folder, PipelineOptions.defaults());
    }

    public static Refiner load(Path folder, PipelineOptions options) {
        Sdxl4j.load();
        return new Refiner(SdxlEngine.load(folder, options, true, null));
    }

    /**
     * A refiner (or any SDXL model, for img2img) from a single-file SGM/A1111 checkpoint; configs from {@code
     * configFolder} (a diffusers folder) or, when null, the bundled SDXL 1.0 configs for the type the keys show.
     */
    public static Refiner fromSingleFile(Path file, Path configFolder, PipelineOptions options) {
        Sdxl4j.load();
        return new Refiner(SdxlEngine.loadSingleFile(file, configFolder, options, true, null));
    }

    /** A local folder or a Hugging Face repo id found in the local hub cache. */
    public static Refiner fromPretrained(String pathOrRepoId, PipelineOptions options) {
        return load(StableDiffusionXL.resolve(pathOrRepoId), options);
    }

    public GenerationResult generate(GenerationRequest request) {
        return engine.run(request, null, null, null);
    }

    /** See {@link StableDiffusionXL#generate(GenerationRequest, Generator, StepCallback, CancellationToken)}. */
    public GenerationResult generate(GenerationRequest request, Generator generator, StepCallback callback,
                                     CancellationToken cancel) {
        return engine.run(request, generator, callback, cancel);
    }

    public Path folder() {
        return engine.folder;
    }

    <T extends StepCallback & SdxlEngine.ConditioningObserver> GenerationResult generate(GenerationRequest request,
                                                                                         Generator generator, T recorder) {
        return engine.run(request, generator, recorder, null, recorder);
    }

    @Override
    public void close() {
        engine.close();
    }
}
