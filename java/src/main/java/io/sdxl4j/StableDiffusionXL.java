package io.sdxl4j;

import java.nio.file.Path;

/**
 * The SDXL base pipeline, diffusers' {@code StableDiffusionXLPipeline}: text to image, or to latents for the
 * {@link Refiner} (ensemble of experts with {@code denoisingEnd}).
 *
 * <pre>{@code
 * try (StableDiffusionXL base = StableDiffusionXL.load(Path.of("sdxl-base-1.0"))) {
 *     GenerationResult r = base.generate(GenerationRequest.builder()
 *             .prompt("Colorful Roaring Lion sitting on a victorian couch, flat icon, vector")
 *             .negativePrompt("realistic, realism, photograph").steps(50).size(1024, 1024).seed(123).build());
 *     ImageIO.write(r.image(0), "png", new File("lion.png"));
 * }
 * }</pre>
 *
 * A pipeline may be used from several threads; calls do not share mutable state (each makes its own scheduler).
 */
public final class StableDiffusionXL implements AutoCloseable {
    private final SdxlEngine engine;

    private StableDiffusionXL(SdxlEngine engine) {
        this.engine = engine;
    }

    /** Loads a diffusers folder (model_index.json, unet/, vae/, text_encoder(_2)/, tokenizer(_2)/, scheduler/). */
    public static StableDiffusionXL load(Path folder) {
        return load(folder, PipelineOptions.defaults());
    }

    public static StableDiffusionXL load(Path folder, PipelineOptions options) {
        return open(ModelSource.of(folder), options);
    }

    /**
     * diffusers' {@code from_pretrained}: a local folder, or a Hugging Face repo id ("stabilityai/stable-diffusion-xl
     * -base-1.0") found in the local hub cache (nothing is downloaded).
     */
    public static StableDiffusionXL fromPretrained(String pathOrRepoId, PipelineOptions options) {
        return open(ModelSource.fromPretrained(pathOrRepoId), options);
    }

    /**
     * diffusers' {@code from_single_file}: one {@code .safetensors} checkpoint in the original SGM / AUTOMATIC1111
     * layout (what Civitai and most fine-tunes ship), with the real SDXL 1.0 configs and tokenizers shipped in the
     * jar for the type its keys show (base or refiner). {@link #load(Path, PipelineOptions)} does the same for a
     * file path.
     *
     * @throws SdxlException BAD_MODEL_FILE for a file that is not an SDXL checkpoint in that layout (the message says
     *     what it looks like: SD 1.x/2.x, SD3, Flux, a LoRA, ...) and for pickles ({@code .ckpt}), which are never
     *     read: convert them to safetensors
     */
    public static StableDiffusionXL fromSingleFile(Path file, PipelineOptions options) {
        return fromSingleFile(file, null, options);
    }

    /**
     * As {@link #fromSingleFile(Path, PipelineOptions)} with the component configs, tokenizers and scheduler config
     * taken from {@code configFolder}, a diffusers folder (diffusers' {@code config=}); null for the bundled ones.
     */
    public static StableDiffusionXL fromSingleFile(Path file, Path configFolder, PipelineOptions options) {
        return open(new ModelSource.SingleFile(file, configFolder), options);
    }

    private static StableDiffusionXL open(ModelSource source, PipelineOptions options) {
        Sdxl4j.load();
        return new StableDiffusionXL(SdxlEngine.open(source, options, false, null));
    }

    /** Generates with a fresh generator seeded from the request (a random seed when it has none). */
    public GenerationResult generate(GenerationRequest request) {
        return engine.run(request, null, null, null);
    }

    /**
     * Generates drawing from {@code generator} (it keeps its stream position afterwards, so the same object can be
     * handed to the refiner as in diffusers). {@code callback} and {@code cancel} may be null.
     */
    public GenerationResult generate(GenerationRequest request, Generator generator, StepCallback callback,
                                     CancellationToken cancel) {
        return engine.run(request, generator, callback, cancel);
    }

    /**
     * Loads a refiner that shares this pipeline's text_encoder_2, VAE and scheduler config (the seed's
     * {@code text_encoder_2=base.text_encoder_2, vae=base.vae, scheduler=base.scheduler}); the shared models stay
     * owned by this pipeline, so close the refiner first or together.
     */
    public Refiner loadRefiner(Path refinerFolder, PipelineOptions options) {
        engine.checkOpen();
        return new Refiner(SdxlEngine.open(ModelSource.of(refinerFolder), options, true, engine));
    }

    /** The folder this pipeline was loaded from (for a single-file checkpoint: the folder of its configs). */
    public Path folder() {
        return engine.folder;
    }

    /** The single-file checkpoint the weights came from, or null when loaded from a diffusers folder. */
    public Path singleFile() {
        return engine.checkpoint == null ? null : engine.checkpoint.path();
    }

    /**
     * AUTOMATIC1111's {@code Model hash} of a single-file checkpoint (the first 10 hex digits of the file's SHA-256,
     * computed on first use: it reads the whole file), or null for a diffusers folder, which A1111 has no hash for.
     */
    public String modelHash() {
        return engine.checkpoint == null ? null : engine.checkpoint.a1111Hash();
    }

    /**
     * Loads a LoRA and fuses it into the UNet and both text encoders (diffusers' {@code load_lora_weights} +
     * {@code fuse_lora}; {@code scale} as {@code cross_attention_kwargs={"scale": s}} in diffusers 0.31, which also
     * scales the text encoders' LoRA). Several LoRAs may be loaded, each with its own scale. Formats: kohya /
     * AUTOMATIC1111 (SGM or diffusers-style UNet names, LoCon convs, {@code .alpha}), LyCORIS LoHa / LoKr, and
     * diffusers / PEFT. Only the weights a LoRA touches are copied (to restore them exactly on unload). A change made
     * while a generation runs waits for the step in progress and applies from the next one.
     *
     * @return the LoRA's name (the file name's stem, as in A1111's {@code <lora:name:weight>}); loading a file of
     *     the same name again replaces it
     * @throws SdxlException BAD_MODEL_FILE for a file that is not a LoRA of a known format, has keys of no known
     *     format (all listed) or modules that match no weight of this pipeline (listed); nothing changes then
     */
    public String loadLora(Path file, double scale) {
        return loadLora(file, scale, LoraMode.FUSED, false);
    }

    /** As {@link #loadLora(Path, double)}; {@code lenient} skips keys and modules that match nothing. */
    public String loadLora(Path file, double scale, boolean lenient) {
        return loadLora(file, scale, LoraMode.FUSED, lenient);
    }

    /**
     * As {@link #loadLora(Path, double)}, fused or {@link LoraMode#UNFUSED unfused} (applied at run time beside the
     * unchanged weights: quick to rescale, swap or unload, a few small GEMMs more per step).
     */
    public String loadLora(Path file, double scale, LoraMode mode) {
        return loadLora(file, scale, mode, false);
    }

    /** As {@link #loadLora(Path, double, LoraMode)}; {@code lenient} skips keys and modules that match nothing. */
    public String loadLora(Path file, double scale, LoraMode mode, boolean lenient) {
        return engine.loras.load(file, scale, lenient, mode);
    }

    /** The mode a loaded LoRA was loaded in. */
    public LoraMode loraMode(String name) {
        return engine.loras.entries().stream().filter(e -> e.name().equals(name)).findFirst()
                .map(LoraOverlay.Entry::mode)
                .orElseThrow(() -> new SdxlException(ErrorCode.NOT_FOUND, "no LoRA named '" + name + "' is loaded"));
    }

    /**
     * Changes the scale of a loaded LoRA (fused: recomputes the weights it touches from their originals; unfused:
     * rebuilds its small adapters).
     */
    public void setLoraScale(String name, double scale) {
        engine.loras.setScale(name, scale);
    }

    /** Unloads one LoRA; the weights no fused LoRA touches any more are the original ones again, bit for bit. */
    public void unloadLora(String name) {
        engine.loras.unload(name);
    }

    /** Unloads every LoRA (diffusers' {@code unfuse_lora} + {@code unload_lora_weights}): the original weights. */
    public void unloadLoras() {
        engine.loras.unloadAll();
    }

    /** The loaded LoRAs in load order: name -> scale. */
    public java.util.LinkedHashMap<String, Double> loras() {
        java.util.LinkedHashMap<String, Double> out = new java.util.LinkedHashMap<>();
        engine.loras.entries().forEach(e -> out.put(e.name(), e.scale()));
        return out;
    }

    /**
     * AUTOMATIC1111's {@code Lora hashes} value for the loaded LoRAs ({@code name: hash, ...}, the hash being the
     * first 12 hex digits of the SHA-256 of each file's tensor data), or null when none is loaded.
     */
    public String loraHashes() {
        return loraHashes(engine.loras);
    }

    static String loraHashes(LoraOverlay loras) {
        var list = loras.entries();
        if (list.isEmpty()) {
            return null;
        }
        StringBuilder b = new StringBuilder();
        for (var e : list) {
            b.append(b.length() == 0 ? "" : ", ").append(e.name()).append(": ").append(e.file().a1111Hash());
        }
        return b.toString();
    }

    /** 1024 for SDXL (the UNet's sample_size x 8): the size used when a request gives none. */
    public int defaultSize() {
        return engine.defaultSize();
    }

    SdxlEngine engine() {
        return engine;
    }

    <T extends StepCallback & SdxlEngine.ConditioningObserver> GenerationResult generate(GenerationRequest request,
                                                                                         Generator generator, T recorder) {
        return engine.run(request, generator, recorder, null, recorder);
    }

    // ---- textual inversion

    /**
     * Loads an SDXL textual-inversion embedding ({@code clip_l} / {@code clip_g} safetensors) as diffusers'
     * {@code load_textual_inversion} does for both text encoders: an n-vector embedding adds the tokens
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
