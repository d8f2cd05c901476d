package io.sdxl4j;

import io.sdxl4j.internal.Native;
import io.sdxl4j.models.AutoencoderKL;
import io.sdxl4j.models.ClipTextConfig;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.SingleFileCheckpoint;
import io.sdxl4j.models.UNet2DConditionModel;
import io.sdxl4j.models.UNetConfig;
import io.sdxl4j.nat.NativeDenoiser;
import io.sdxl4j.schedulers.Scheduler;
import io.sdxl4j.schedulers.SchedulerConfig;
import io.sdxl4j.text.ClipTokenizer;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The machinery behind {@link StableDiffusionXL} and {@link Refiner}: diffusers 0.31's
 * {@code StableDiffusionXLPipeline.__call__} and {@code StableDiffusionXLImg2ImgPipeline.__call__}, step for step
 * (encode_prompt, _get_add_time_ids, prepare_latents, get_timesteps, the denoising loop in native code, decode,
 * watermark, postprocess). Text and small arrays are handled here in Java; every model runs natively.
 *
 * <p>Its parts: a {@link ModelSource} yields the {@link Components} (models in offload {@link Slot}s, configs);
 * {@link LoraOverlay} and {@link LoadedEmbeddings} are overlays on them; {@link Plan} validates a request,
 * {@link PromptEncoder} builds the text conditioning, {@link TimeIds} the micro-conditioning and {@link VaeCodec}
 * runs the VAE. This class orchestrates one generation from them.
 */
final class SdxlEngine implements AutoCloseable {
    /** One CLIP text encoder with its tokenizer; projection = CLIPTextModelWithProjection (gives the pooled vector). */
    record Encoder(ClipTokenizer tokenizer, Slot<ClipTextModel> slot, ClipTextConfig config, boolean projection) {
        ClipTextModel model() {
            return slot.get();
        }
    }

    /** Text conditioning held in Java: embeds [batch, tokens, dim], pooled [batch, pooledDim]. */
    record Cond(float[] embeds, int batch, int tokens, int dim, float[] pooled, int pooledDim) {}

    final Components parts;
    final Path folder;
    final boolean img2img;
    final List<Encoder> encoders;       // base: text_encoder, text_encoder_2; refiner: text_encoder_2
    final Slot<UNet2DConditionModel> unet;
    final UNetConfig unetConfig;
    final Slot<AutoencoderKL> vae;
    final PipelineOptions options;
    final SingleFileCheckpoint checkpoint;  // the single file the weights come from (folder = its configs), or null
    /** The LoRAs fused into this pipeline's UNet and text encoders. */
    final LoraOverlay loras;
    /** The textual-inversion embeddings on its tokenizers and text encoders. */
    final LoadedEmbeddings embeddings;
    private final PromptEncoder prompts;
    private final VaeCodec vaeCodec;
    private volatile boolean closed;
    private final SdxlEngine viewOf;  // non-null: a view over that engine's models (owns nothing)

    private SdxlEngine(Components parts, PipelineOptions options, boolean img2img) {
        this(parts, options, img2img, null);
    }

    /**
     * {@code viewOf}: the engine whose models {@code parts} are (a view); its LoRA overlay and embeddings are used,
     * not new ones, so that both see the same set, and they stay its own. Null for an engine of its own.
     */
    private SdxlEngine(Components parts, PipelineOptions options, boolean img2img, SdxlEngine viewOf) {
        this.parts = parts;
        this.folder = parts.folder;
        this.checkpoint = parts.checkpoint;
        this.img2img = img2img;
        this.encoders = parts.encoders;
        this.unet = parts.unet;
        this.unetConfig = parts.unetConfig;
        this.vae = parts.vae;
        this.options = options;
        this.viewOf = viewOf;
        this.embeddings = viewOf != null ? viewOf.embeddings : new LoadedEmbeddings(parts.encoders);
        this.prompts = new PromptEncoder(parts, this.embeddings);
        this.vaeCodec = new VaeCodec(parts.vae, parts.vaeConfig, options.vaeTiling());
        // One overlay per set of models: it hooks their slots (re-applied after an offload reload).
        this.loras = viewOf != null ? viewOf.loras : new LoraOverlay(this);
    }

    // ============================================================================================== loading

    /**
     * Loads a pipeline from {@code source}. {@code shareFrom}: a loaded engine whose text_encoder_2 (with tokenizer_2),
     * VAE and scheduler config are used instead of loading the source's (the seed's {@code
     * text_encoder_2=base.text_encoder_2, vae=base.vae}); they stay owned by that engine.
     */
    static SdxlEngine open(ModelSource source, PipelineOptions options, boolean img2img, SdxlEngine shareFrom) {
        if (shareFrom != null) {
            shareFrom.checkOpen();
        }
        Components parts = source.open(options, shareFrom == null ? null : shareFrom.parts);
        try {
            return new SdxlEngine(parts, options, img2img);
        } catch (RuntimeException e) {
            parts.close();
            throw e;
        }
    }

    /**
     * An image-to-image engine over {@code base}'s models, tokenizers, embeddings and configs (diffusers'
     * {@code StableDiffusionXLImg2ImgPipeline.from_pipe}): nothing is loaded or copied; the LoRAs and embeddings are
     * one set for both (loaded through either, they apply to both); closing the view closes none of it (after base
     * is closed, the view refuses to run).
     */
    static SdxlEngine img2imgView(SdxlEngine base) {
        base.checkOpen();
        return new SdxlEngine(base.parts.sharedView(), base.options, true, base);
    }

    void checkOpen() {
        if (closed) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the pipeline is closed");
        }
    }

    int defaultSize() {
        return parts.defaultSize();
    }

    // ============================================================================================== running

    /** Sees the UNet's conditioning as built for the first step (tests compare it with diffusers'). */
    interface ConditioningObserver {
        void observe(Cond conditioning, float[] timeIds, int idsPerRow);
    }

    GenerationResult run(GenerationRequest r, Generator callerGenerator, StepCallback callback, CancellationToken cancel) {
        return run(r, callerGenerator, callback, cancel, null);
    }

    /** text-to-image (base) or image-to-image (refiner), by this engine's kind. */
    GenerationResult run(GenerationRequest r, Generator callerGenerator, StepCallback callback, CancellationToken cancel,
                         ConditioningObserver observer) {
        checkOpen();
        long started = System.nanoTime();
        CancellationToken token = cancel != null ? cancel : new CancellationToken();
        Plan plan = Plan.validate(r, parts, options, img2img);

        // ---- text conditioning (encode_prompt), repeated for images per prompt
        Cond[] pn;
        for (Encoder e : encoders) {
            e.slot().acquire();
        }
        try {
            pn = prompts.encode(r, plan);
        } finally {
            for (Encoder e : encoders) {
                e.slot().release();
            }
        }
        token.throwIfCancelled("after encoding the prompts");
        int n = r.imagesPerPrompt();
        Cond pos = PromptEncoder.repeat(pn[0], n);
        Cond neg = pn[1] == null ? null : PromptEncoder.repeat(pn[1], n);
        int total = plan.batch * n;

        Generator ownedGenerator = null;
        long seed;
        Generator g;
        if (callerGenerator != null) {
            g = callerGenerator;
            seed = callerGenerator.initialSeed();
        } else {
            seed = r.seed() != null ? r.seed() : new SecureRandom().nextLong() & 0x7fffffffffffffffL;
            ownedGenerator = Generator.seeded(seed);
            g = ownedGenerator;
        }
        try (Scheduler scheduler = Scheduler.create(schedulerConfig(r))) {
            SchedulerKind kind = SchedulerKind.describe(scheduler.config().className(), scheduler.config().values());
            String schedulerName = kind != null ? kind.displayName() : scheduler.config().className();
            scheduler.setTimesteps(r.steps());
            double[] all = scheduler.timesteps();
            int begin = 0;
            int end = all.length;
            if (img2img) {
                if (r.denoisingStart() != null) {
                    begin = scheduler.beginIndexForDenoisingStart(r.denoisingStart());
                } else {
                    // get_timesteps: init_timestep = min(int(steps * strength), steps); t_start = steps - init_timestep
                    int init = (int) Math.min((long) (r.steps() * r.strength()), r.steps());
                    int tStart = Math.max(r.steps() - init, 0);
                    begin = tStart * scheduler.order();
                }
                if (r.steps() - begin / Math.max(1, scheduler.order()) < 1 && r.denoisingStart() == null) {
                    throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "strength " + r.strength() + " with "
                            + r.steps() + " steps leaves no step to run; raise strength or steps");
                }
            }
            if (r.denoisingEnd() != null) {
                // ts >= round(N - end * N) among the remaining timesteps (diffusers' discrete_timestep_cutoff)
                double cutoff = Math.rint(1000.0 - r.denoisingEnd() * 1000.0);
                int keep = 0;
                for (int i = begin; i < all.length; i++) {
                    keep += all[i] >= cutoff ? 1 : 0;
                }
                end = begin + keep;
            }
            if (end <= begin) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "no denoising step left: steps " + r.steps()
                        + (r.denoisingStart() != null ? ", denoising_start " + r.denoisingStart() : "")
                        + (r.denoisingEnd() != null ? ", denoising_end " + r.denoisingEnd() : "")
                        + "; use more steps or wider fractions");
            }

            // ---- initial latents
            float[] latents;
            long[] latentShape;
            if (img2img) {
                latents = prepareImageLatents(r.image(), total, plan, scheduler, begin, r.denoisingStart() == null, g);
                latentShape = new long[] {total, unetConfig.inChannels(), plan.latentH, plan.latentW};
            } else {
                latentShape = new long[] {total, unetConfig.inChannels(), plan.height / 8, plan.width / 8};
                if (r.latents() != null) {
                    latents = r.latents();
                } else {
                    try (Tensor noise = g.randn(latentShape)) {
                        latents = noise.toFloatArray();
                    }
                }
                float sigma = (float) scheduler.initNoiseSigma();
                for (int i = 0; i < latents.length; i++) {
                    latents[i] *= sigma;
                }
            }

            // ---- UNet conditioning: [negative..., positive...] when guiding
            boolean guided = r.guidanceScale() > 1.0;
            float[][] timeIds = TimeIds.of(r, plan, img2img, parts.requiresAestheticsScore);  // {positive, negative}
            Cond cond = guided ? PromptEncoder.concatBatch(neg, pos) : pos;
            float[] ids = img2img ? TimeIds.stackImg2Img(timeIds, total, guided) : TimeIds.stackBase(timeIds, total, guided);
            int nIds = timeIds[0].length;
            if (observer != null) {
                observer.observe(cond, ids, nIds);
            }

            double[] used = Arrays.copyOfRange(all, begin, end);
            float[] finalLatents;
            try (Tensor lat = Tensor.of(latents, latentShape);
                 Tensor pe = Tensor.of(cond.embeds(), cond.batch(), cond.tokens(), cond.dim());
                 Tensor te = Tensor.of(cond.pooled(), cond.batch(), cond.pooledDim());
                 Tensor ti = Tensor.of(ids, cond.batch(), nIds)) {
                final int b0 = begin;
                final int e0 = end;
                UNet2DConditionModel unetModel = unet.acquire();
                NativeDenoiser d;
                try {
                    d = Native.call(() -> NativeDenoiser.create(unetModel.handle(), scheduler.handle(), lat.handle(),
                        pe.handle(), te.handle(), ti.handle(), b0, e0, r.guidanceScale(), r.guidanceRescale(), g.handle()));
                } catch (RuntimeException e) {
                    unet.release();
                    throw e;
                }
                try {
                    for (int i = begin; i < end; i++) {
                        token.throwIfCancelled("before step " + (i - begin + 1) + " of " + (end - begin));
                        Native.run(d::step);
                        if (callback != null) {
                            final NativeDenoiser dd = d;
                            callback.onStep(new StepInfo(i - begin + 1, end - begin, i, all[i], System.nanoTime() - started,
                                    () -> Native.call(() -> {
                                        try (Tensor t = Tensor.wrap(dd.latents())) {
                                            return t.toFloatArray();
                                        }
                                    })));
                        }
                    }
                    try (Tensor t = Native.call(() -> Tensor.wrap(d.latents()))) {
                        finalLatents = t.toFloatArray();
                    }
                } finally {
                    d.close();
                    unet.release();
                }
            }

            if (r.output() == GenerationRequest.Output.LATENT) {
                return new GenerationResult(finalLatents, latentShape, null, plan.height, plan.width, seed, used, schedulerName, r);
            }
            token.throwIfCancelled("before decoding");
            float[] pixels = vaeCodec.decode(finalLatents, latentShape, plan);
            return new GenerationResult(finalLatents, latentShape, pixels, plan.height, plan.width, seed, used, schedulerName, r);
        } finally {
            if (ownedGenerator != null) {
                ownedGenerator.close();
            }
        }
    }

    /**
     * img2img prepare_latents: the image as latents ({@link VaeCodec#encode}), the batch tiled to the output count;
     * with addNoise (no denoising_start) scheduler.add_noise at the first timestep.
     */
    private float[] prepareImageLatents(ImageInput img, int total, Plan plan, Scheduler scheduler, int begin, boolean addNoise,
                                        Generator g) {
        float[] init = vaeCodec.encode(img, g);
        if (total > img.batch()) {  // torch.cat([init_latents] * (total // batch))
            float[] tiled = new float[init.length * (total / img.batch())];
            for (int k = 0; k < total / img.batch(); k++) {
                System.arraycopy(init, 0, tiled, k * init.length, init.length);
            }
            init = tiled;
        }
        if (!addNoise) {
            return init;
        }
        long[] shape = {total, unetConfig.inChannels(), plan.latentH, plan.latentW};
        try (Tensor original = Tensor.of(init, shape); Tensor noise = g.randn(shape);
             Tensor noised = scheduler.addNoise(original, noise, begin)) {
            return noised.toFloatArray();
        }
    }

    private SchedulerConfig schedulerConfig(GenerationRequest r) {
        Map<String, Object> overrides = new LinkedHashMap<>();
        if (r.scheduler() != null) {
            overrides.putAll(r.scheduler().overrides());
        }
        overrides.putAll(r.schedulerOverrides());
        if (r.eta() != 0.0) {
            overrides.put("eta", r.eta());
        }
        return SchedulerConfig.fromConfig(r.scheduler() == null ? null : r.scheduler().diffusersClass(),
                parts.schedulerConfig, overrides);
    }

    // ============================================================================================== embeddings

    /** Encoder e's tokenizer with the loaded embeddings' tokens. */
    ClipTokenizer tokenizerWithEmbeddings(int e) {
        return embeddings.tokenizer(e);
    }

    /** The text the tokenizers see for a prompt: embedding names as tokens, multi-vector tokens expanded. */
    String promptForTokenizers(String prompt, PromptSyntax syntax) {
        return embeddings.promptForTokenizers(prompt, syntax);
    }

    // ============================================================================================== lifetime

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (viewOf == null) {
            loras.close();
        }
        parts.close();
    }
}
