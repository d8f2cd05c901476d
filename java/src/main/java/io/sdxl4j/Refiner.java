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
        return open(ModelSource.of(folder), options);
    }

    /**
     * A refiner (or any SDXL model, for img2img) from a single-file SGM/A1111 checkpoint; configs from {@code
     * configFolder} (a diffusers folder) or, when null, the bundled SDXL 1.0 configs for the type the keys show.
     */
    public static Refiner fromSingleFile(Path file, Path configFolder, PipelineOptions options) {
        return open(new ModelSource.SingleFile(file, configFolder), options);
    }

    /** A local folder or a Hugging Face repo id found in the local hub cache. */
    public static Refiner fromPretrained(String pathOrRepoId, PipelineOptions options) {
        return open(ModelSource.fromPretrained(pathOrRepoId), options);
    }

    /**
     * Image-to-image with {@code base}'s models, as diffusers' {@code StableDiffusionXLImg2ImgPipeline.from_pipe(base)}:
     * nothing is loaded and no weights are copied; the two share one set of LoRAs and embeddings (loaded through
     * either, they apply to both, as diffusers' shared modules do). Closing the result leaves {@code base} and its
     * LoRAs as they are; once {@code base} is closed, the result refuses to run.
     */
    public static Refiner fromPipe(StableDiffusionXL base) {
        return new Refiner(SdxlEngine.img2imgView(base.engine()));
    }

    private static Refiner open(ModelSource source, PipelineOptions options) {
        Sdxl4j.load();
        return new Refiner(SdxlEngine.open(source, options, true, null));
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

    // ---- LoRA

    /**
     * Loads a LoRA made for the refiner and fuses it into its UNet and text_encoder_2, as {@link
     * StableDiffusionXL#loadLora(Path, double)} does for the base (kohya {@code lora_unet_} / {@code lora_te2_} or
     * diffusers/PEFT {@code unet.} / {@code text_encoder_2.}; kohya's SGM UNet names are numbered for the refiner's
     * four levels). The refiner has no text_encoder: modules for it ({@code lora_te1_}, {@code text_encoder.}) are
     * refused, listed, unless lenient. A refiner loaded with {@link StableDiffusionXL#loadRefiner} uses the base's
     * text_encoder_2, which takes the base's LoRAs: text_encoder_2 modules are then refused too unless lenient.
     *
     * @return the LoRA's name (the file name's stem); loading a file of the same name again replaces it
     * @throws SdxlException BAD_MODEL_FILE for a file that is not a LoRA of a known format, has keys of no known
     *     format, modules for a text encoder this refiner cannot take, or modules that match no weight of it (all
     *     listed); nothing changes then
     */
    public String loadLora(Path file, double scale) {
        return loadLora(file, scale, false);
    }

    /** As {@link #loadLora(Path, double)}; {@code lenient} skips keys and modules that match nothing here. */
    public String loadLora(Path file, double scale, boolean lenient) {
        return loadLora(file, scale, LoraMode.FUSED, lenient);
    }

    /**
     * As {@link #loadLora(Path, double)}, fused or {@link LoraMode#UNFUSED unfused} (applied at run time beside the
     * weights, as {@link StableDiffusionXL#loadLora(Path, double, LoraMode)}).
     */
    public String loadLora(Path file, double scale, LoraMode mode) {
        return loadLora(file, scale, mode, false);
    }

    /** As {@link #loadLora(Path, double, LoraMode)}; {@code lenient} skips keys and modules that match nothing here. */
    public String loadLora(Path file, double scale, LoraMode mode, boolean lenient) {
        return engine.loras.load(file, scale, lenient, mode);
    }

    /** Changes the scale of a loaded LoRA (recomputes the weights it touches from their originals). */
    public void setLoraScale(String name, double scale) {
        engine.loras.setScale(name, scale);
    }

    /** Unloads one LoRA; the weights no loaded LoRA touches any more are the original ones again, bit for bit. */
    public void unloadLora(String name) {
        engine.loras.unload(name);
    }

    /** Unloads every LoRA: the original weights, bit for bit. */
    public void unloadLoras() {
        engine.loras.unloadAll();
    }

    /** The loaded LoRAs in load order: name -> scale. */
    public java.util.LinkedHashMap<String, Double> loras() {
        java.util.LinkedHashMap<String, Double> out = new java.util.LinkedHashMap<>();
        engine.loras.entries().forEach(e -> out.put(e.name(), e.scale()));
        return out;
    }

    /** As {@link StableDiffusionXL#loraHashes()}: A1111's {@code Lora hashes} of the loaded LoRAs, or null. */
    public String loraHashes() {
        return StableDiffusionXL.loraHashes(engine.loras);
    }

    SdxlEngine engine() {
        return engine;
    }

    // ---- textual inversion

    /**
     * Loads an SDXL textual-inversion embedding ({@code clip_l} / {@code clip_g} safetensors) as diffusers'
     * {@code load_textual_inversion} does for its text encoder (the refiner has text_encoder_2 only: clip_g is used): an n-vector embedding adds the tokens
     * {@code token, token_1, ..., token_{n-1}} to both tokenizers and its vectors as the new rows of both encoders'
     * token-embedding tables (the model weights are untouched). In prompts, {@code token} stands for all n tokens.
     * As in diffusers, text_encoder_2's pooled output is then taken at the first {@code token_1} of a prompt that
     * uses a multi-vector embedding (the legacy "highest token id" pooling), not at its end token.
     *
     * @param token the prompt text that invokes it, e.g. {@code "<my-style>"}; null: {@code "<NAME>"}, NAME the file
     *     name without ".safetensors"
     * @throws SdxlException BAD_MODEL_FILE for a file that is not an SDXL embedding (missing clip_l/clip_g, bad
     *     shapes, NaN), INVALID_ARGUMENT if the widths do not fit the encoders or a token is already in the vocabulary,
     *     NOT_FOUND if the file cannot be read
     */
    public TextualInversion loadTextualInversion(Path file, String token) {
        engine.checkOpen();
        return engine.embeddings.load(file, token);
    }

    /** Removes the embedding loaded as {@code token} (its tokens and rows); false if none was. */
    public boolean unloadTextualInversion(String token) {
        return engine.embeddings.unload(token);
    }

    /** Removes every loaded embedding. */
    public void unloadTextualInversions() {
        engine.embeddings.unloadAll();
    }

    /** The loaded embeddings by token, in load order. */
    public java.util.Map<String, TextualInversion> textualInversions() {
        return engine.embeddings.byToken();
    }

    /**
     * A folder of embeddings ({@code NAME.safetensors}) that prompts may name: ComfyUI's {@code embedding:NAME} in any
     * syntax, and with {@link PromptSyntax#A1111} the bare {@code NAME} as AUTOMATIC1111 does. A named embedding is
     * loaded on first use as token {@code <NAME>}. Null: none.
     */
    public void setEmbeddingsDirectory(Path dir) {
        engine.embeddings.setDirectory(dir);
    }

    /** The embeddings the request's prompts use, name to A1111 short hash (A1111's "TI hashes" infotext entry). */
    public java.util.Map<String, String> textualInversionHashes(GenerationRequest request) {
        return engine.embeddings.hashes(request);
    }

    @Override
    public void close() {
        engine.close();
    }
}
