package io.sdxl4j;

import io.sdxl4j.images.InvisibleWatermark;
import io.sdxl4j.internal.Native;
import io.sdxl4j.models.AutoencoderKL;
import io.sdxl4j.models.ClipTextConfig;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.ClipTextOutput;
import io.sdxl4j.models.DiffusersFolder;
import io.sdxl4j.models.LatentDistribution;
import io.sdxl4j.models.SingleFileCheckpoint;
import io.sdxl4j.models.UNet2DConditionModel;
import io.sdxl4j.models.UNetConfig;
import io.sdxl4j.models.VaeConfig;
import io.sdxl4j.nat.NativeDenoiser;
import io.sdxl4j.schedulers.Scheduler;
import io.sdxl4j.schedulers.SchedulerConfig;
import io.sdxl4j.text.A1111Prompt;
import io.sdxl4j.text.ClipTokenizer;
import io.sdxl4j.text.Compel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The machinery behind {@link StableDiffusionXL} and {@link Refiner}: diffusers 0.31's
 * {@code StableDiffusionXLPipeline.__call__} and {@code StableDiffusionXLImg2ImgPipeline.__call__}, step for step
 * (encode_prompt, _get_add_time_ids, prepare_latents, get_timesteps, the denoising loop in native code, decode,
 * watermark, postprocess). Text and small arrays are handled here in Java; every model runs natively.
 */
final class SdxlEngine implements AutoCloseable {
    /** One CLIP text encoder with its tokenizer; projection = CLIPTextModelWithProjection (gives the pooled vector). */
    record Encoder(ClipTokenizer tokenizer, Slot<ClipTextModel> slot, ClipTextConfig config, boolean projection) {
        ClipTextModel model() {
            return slot.get();
        }
    }

    /**
     * A model held by the pipeline. Without offload it is loaded once, when the pipeline loads. With model-level
     * offload (diffusers' enable_model_cpu_offload) it is loaded onto the device when a phase of a generation
     * needs it (text encoding, the denoising loop, the VAE) and released when the last user is done, so only
     * one component occupies the device at a time; the weights stay memory-mapped on the host.
     */
    static final class Slot<T extends AutoCloseable> implements AutoCloseable {
        private final java.util.function.Supplier<T> loader;
        private final boolean offload;
        private T model;
        private int users;
        private boolean closed;
        private java.util.function.Consumer<T> onLoad;  // overlays (LoRA) re-applied to a freshly loaded model

        Slot(java.util.function.Supplier<T> loader, boolean offload) {
            this.loader = loader;
            this.offload = offload;
            if (!offload) {
                model = loader.get();
            }
        }

        synchronized T get() {
            if (closed) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the pipeline is closed");
            }
            if (model == null) {
                T m = loader.get();
                if (onLoad != null) {
                    try {
                        onLoad.accept(m);
                    } catch (RuntimeException e) {
                        closeQuietly(m);
                        throw e;
                    }
                }
                model = m;
            }
            return model;
        }

        /** Sets what is done to each model this slot loads from now on (not to the one loaded now). */
        synchronized void onLoad(java.util.function.Consumer<T> hook) {
            onLoad = hook;
        }

        /** The model if it is loaded now, else null (does not load it). */
        synchronized T ifLoaded() {
            return model;
        }

        /** Marks the start of a phase that uses the model (loads it when offloaded). */
        synchronized T acquire() {
            T m = get();
            users++;
            return m;
        }

        /** Ends a phase; an offloaded model no one uses any more is released. */
        synchronized void release() {
            users = Math.max(0, users - 1);
            if (offload && users == 0 && model != null) {
                closeQuietly(model);
                model = null;
            }
        }

        synchronized boolean loaded() {
            return model != null;
        }

        @Override
        public synchronized void close() {
            closed = true;
            if (model != null) {
                closeQuietly(model);
                model = null;
            }
        }
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // closing native handles does not fail
        }
    }

    /** Text conditioning held in Java: embeds [batch, tokens, dim], pooled [batch, pooledDim]. */
    record Cond(float[] embeds, int batch, int tokens, int dim, float[] pooled, int pooledDim) {}

    private static final InvisibleWatermark WATERMARK = InvisibleWatermark.sdxl();

    final Path folder;
    final boolean img2img;
    final List<Encoder> encoders;       // base: text_encoder, text_encoder_2; refiner: text_encoder_2
    final Slot<UNet2DConditionModel> unet;
    final UNetConfig unetConfig;
    final Slot<AutoencoderKL> vae;
    final VaeConfig vaeConfig;
    final Path schedulerConfig;
    final boolean forceZerosForEmptyPrompt;
    final boolean requiresAestheticsScore;
    final PipelineOptions options;
    final SingleFileCheckpoint checkpoint;  // the single file the weights come from (folder = its configs), or null
    private final List<AutoCloseable> owned;
    private volatile boolean closed;

    private SdxlEngine(Path folder, boolean img2img, List<Encoder> encoders, Slot<UNet2DConditionModel> unet,
                       Slot<AutoencoderKL> vae, VaeConfig vaeConfig, Path schedulerConfig, boolean forceZeros,
                       boolean requiresAesthetics, PipelineOptions options, SingleFileCheckpoint checkpoint,
                       List<AutoCloseable> owned) {
        this.folder = folder;
        this.checkpoint = checkpoint;
        this.img2img = img2img;
        this.encoders = encoders;
        this.unet = unet;
        this.unetConfig = unet.get().config();
        this.vae = vae;
        this.vaeConfig = vaeConfig;
        this.schedulerConfig = schedulerConfig;
        this.forceZerosForEmptyPrompt = forceZeros;
        this.requiresAestheticsScore = requiresAesthetics;
        this.options = options;
        this.owned = owned;
        this.loras = new LoraOverlay(this);
        owned.add(loras);
    }

    /** The LoRAs fused into this pipeline's UNet and text encoders. */
    final LoraOverlay loras;

    // ============================================================================================== loading

    /**
     * Loads a diffusers SDXL folder. {@code shareFrom}: a loaded engine whose text_encoder_2 (with tokenizer_2) and
     * VAE are used instead of loading this folder's (the seed's {@code text_encoder_2=base.text_encoder_2,
     * vae=base.vae}); they stay owned by that engine.
     */
    static SdxlEngine load(Path folder, PipelineOptions options, boolean img2img, SdxlEngine shareFrom) {
        if (SingleFileCheckpoint.isSingleFile(folder)) {
            return loadSingleFile(folder, null, options, img2img, shareFrom);
        }
        return load(folder, null, options, img2img, shareFrom, new ArrayList<>());
    }

    /**
     * Loads a single-file SGM/A1111 checkpoint: the weights from the file (mapped natively), everything else
     * (component configs, tokenizers, scheduler) from {@code configFolder}, a diffusers folder as diffusers'
     * {@code from_single_file(config=...)} takes it, or when null the real SDXL 1.0 base/refiner configs shipped
     * in the jar for the type the file's keys show.
     */
    static SdxlEngine loadSingleFile(Path file, Path configFolder, PipelineOptions options, boolean img2img,
                                     SdxlEngine shareFrom) {
        checkDevice(options);
        List<AutoCloseable> owned = new ArrayList<>();
        try {
            SingleFileCheckpoint ck = SingleFileCheckpoint.open(file);
            owned.add(ck);
            Path configs = configFolder != null ? configFolder : io.sdxl4j.models.BundledConfigs.folder(ck.isRefiner());
            return load(configs, ck, options, img2img, shareFrom, owned);
        } catch (RuntimeException e) {
            closeAll(owned);
            throw e;
        }
    }

    private static SdxlEngine load(Path folder, SingleFileCheckpoint ck, PipelineOptions options, boolean img2img,
                                   SdxlEngine shareFrom, List<AutoCloseable> owned) {
        checkDevice(options);
        DiffusersFolder df = DiffusersFolder.open(folder);
        try {
            String variant = options.variant() == null || options.variant().isEmpty() ? null : options.variant();
            Device device = options.device();
            DType dtype = options.dtype();
            boolean offload = options.cpuOffload();
            List<Encoder> encoders = new ArrayList<>();
            if (df.componentClass("text_encoder").isPresent()) {
                ClipTokenizer tok = ClipTokenizer.load(df.component("tokenizer", "CLIPTokenizer"));
                String v = variantIn(df, "text_encoder", variant);
                ClipTextConfig cfg = ClipTextConfig.read(df.component("text_encoder").resolve("config.json"));
                Slot<ClipTextModel> te = own(owned, new Slot<>(() -> ck != null
                        ? ClipTextModel.load(ck, "text_encoder", cfg, device, dtype)
                        : df.textEncoder(v, device, dtype), offload));
                encoders.add(new Encoder(tok, te, cfg, cfg.withProjection()));
            }
            Encoder second;
            if (shareFrom != null) {
                shareFrom.checkOpen();
                second = shareFrom.encoders.get(shareFrom.encoders.size() - 1);
            } else {
                ClipTokenizer tok2 = ClipTokenizer.load(df.component("tokenizer_2", "CLIPTokenizer"));
                String v = variantIn(df, "text_encoder_2", variant);
                ClipTextConfig cfg = ClipTextConfig.read(df.component("text_encoder_2").resolve("config.json"));
                Slot<ClipTextModel> te2 = own(owned, new Slot<>(() -> ck != null
                        ? ClipTextModel.load(ck, "text_encoder_2", cfg, device, dtype)
                        : df.textEncoder2(v, device, dtype), offload));
                second = new Encoder(tok2, te2, cfg, cfg.withProjection());
            }
            if (!second.projection()) {
                throw new SdxlException(ErrorCode.BAD_MODEL_FILE, folder + ": text_encoder_2 must be a "
                        + "CLIPTextModelWithProjection (SDXL takes its pooled output)");
            }
            encoders.add(second);
            String uv = variantIn(df, "unet", variant);
            UNetConfig singleFileUnet = ck != null
                    ? UNetConfig.read(df.component("unet", "UNet2DConditionModel").resolve("config.json")) : null;
            Slot<UNet2DConditionModel> unet = own(owned, new Slot<>(() -> ck != null
                    ? UNet2DConditionModel.load(ck, singleFileUnet, device, dtype)
                    : df.unet(uv, device, dtype), offload));
            Slot<AutoencoderKL> vae;
            VaeConfig vaeConfig;
            if (shareFrom != null) {
                vae = shareFrom.vae;
                vaeConfig = shareFrom.vaeConfig;
            } else if (options.vae() != null) {
                // Another VAE (diffusers' vae=...): a diffusers VAE folder, or one weights file under the model's config.
                Path other = options.vae();
                List<Path> files;
                if (Files.isDirectory(other)) {
                    vaeConfig = VaeConfig.read(other.resolve("config.json"));
                    files = AutoencoderKL.weightFiles(other, variant);
                } else if (Files.isRegularFile(other) && other.getFileName().toString().endsWith(".safetensors")) {
                    vaeConfig = VaeConfig.read(df.component("vae", "AutoencoderKL").resolve("config.json"));
                    files = List.of(other);
                } else {
                    throw new SdxlException(ErrorCode.NOT_FOUND, "VAE " + other + " is neither a diffusers VAE folder "
                            + "(config.json + weights) nor a .safetensors file");
                }
                // The fp16-fix VAE says force_upcast false: it then runs in fp16, which is what it is for.
                DType vaeType = dtype == DType.F16 && vaeConfig.forceUpcast() ? DType.F32 : dtype;
                VaeConfig vc = vaeConfig;
                vae = own(owned, new Slot<>(() -> AutoencoderKL.load(vc, files, device, vaeType), offload));
            } else {
                vaeConfig = VaeConfig.read(df.component("vae", "AutoencoderKL").resolve("config.json"));
                // The SDXL VAE overflows in fp16 (diffusers' force_upcast): it then runs in F32.
                DType vaeType = dtype == DType.F16 && vaeConfig.forceUpcast() ? DType.F32 : dtype;
                String vv = variantIn(df, "vae", variant);
                VaeConfig vc = vaeConfig;
                vae = own(owned, new Slot<>(() -> ck != null ? AutoencoderKL.load(ck, vc, device, vaeType)
                        : df.vae(vv, device, vaeType), offload));
            }
            // A refiner loaded from a base also takes the base's scheduler, as the seed does
            // (scheduler=base_pipeline.scheduler); requests may still choose another.
            Path sched = shareFrom != null ? shareFrom.schedulerConfig
                    : df.component("scheduler").resolve("scheduler_config.json");
            if (!Files.isRegularFile(sched)) {
                throw new SdxlException(ErrorCode.NOT_FOUND, sched + " is missing");
            }
            boolean forceZeros = df.flag("force_zeros_for_empty_prompt", true);
            boolean aesthetics = df.flag("requires_aesthetics_score", false);
            SdxlEngine engine = new SdxlEngine(folder, img2img, List.copyOf(encoders), unet, vae, vaeConfig, sched,
                    forceZeros, aesthetics, options, ck, owned);
            unet.release();  // the config was read through it; an offloaded UNet goes until the loop needs it
            return engine;
        } catch (RuntimeException e) {
            closeAll(owned);
            throw e;
        }
    }

    private static <T extends AutoCloseable> T own(List<AutoCloseable> owned, T t) {
        owned.add(t);
        return t;
    }

    /**
     * The variant for one component: diffusers loads a component's plain files (with a warning) when it has no
     * files of the requested variant; the same here.
     */
    private static String variantIn(DiffusersFolder df, String component, String variant) {
        if (variant == null) {
            return null;
        }
        Path dir = df.root().resolve(component);
        String tag = "." + variant + ".";
        try (var files = Files.list(dir)) {
            if (files.anyMatch(f -> f.getFileName().toString().contains(tag))) {
                return variant;
            }
        } catch (java.io.IOException e) {
            return variant;  // let the loader report the folder problem
        }
        System.getLogger("io.sdxl4j").log(System.Logger.Level.INFO, component + " has no \"" + variant
                + "\" weight files; loading its plain files, as diffusers does");
        return null;
    }

    private static void checkDevice(PipelineOptions options) {
        if (options.device() == Device.CUDA && !Sdxl4j.cudaAvailable()) {
            throw new SdxlException(ErrorCode.DEVICE_ERROR, "CUDA requested but unavailable: " + Sdxl4j.cudaStatus()
                    + (Sdxl4j.cudaCompiled() ? "" : " (this build has no CUDA backend)") + "; use Device.CPU");
        }
        if (options.device() == Device.CPU && options.dtype() != DType.F32) {
            throw new SdxlException(ErrorCode.UNSUPPORTED, "the CPU backend computes in F32 (fp16/bf16 weight files are "
                    + "widened when loaded: use the fp16 variant with dtype F32); " + options.dtype() + " needs CUDA");
        }
    }

    void checkOpen() {
        if (closed) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the pipeline is closed");
        }
    }

    int defaultSize() {
        return (int) unetConfig.sampleSize() * 8;
    }

    int pooledDim() {
        return (int) encoders.get(encoders.size() - 1).config().projectionDim();
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
        Plan plan = validate(r);

        // ---- text conditioning (encode_prompt), repeated for images per prompt
        Cond[] pn;
        for (Encoder e : encoders) {
            e.slot().acquire();
        }
        try {
            pn = encodePrompts(r, plan);
        } finally {
            for (Encoder e : encoders) {
                e.slot().release();
            }
        }
        token.throwIfCancelled("after encoding the prompts");
        int n = r.imagesPerPrompt();
        Cond pos = repeat(pn[0], n);
        Cond neg = pn[1] == null ? null : repeat(pn[1], n);
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
            float[][] timeIds = timeIds(r, plan);  // {positive, negative}
            Cond cond = guided ? concatBatch(neg, pos) : pos;
            float[] ids = img2img ? stackTimeIdsImg2Img(timeIds, total, guided) : stackTimeIdsBase(timeIds, total, guided);
            int nIds = timeIds[0].length;
            if (observer != null) {
                observer.observe(cond, ids, nIds);
            }

            double[] used = Arrays.copyOfRange(all, begin, end);
            float[] finalLatents;
            try (Tensor lat = Tensor.of(latents, latentShape);
                 Tensor pe = Tensor.of(cond.embeds, cond.batch, cond.tokens, cond.dim);
                 Tensor te = Tensor.of(cond.pooled, cond.batch, cond.pooledDim);
                 Tensor ti = Tensor.of(ids, cond.batch, nIds)) {
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
            float[] pixels = decode(finalLatents, latentShape, plan, r);
            return new GenerationResult(finalLatents, latentShape, pixels, plan.height, plan.width, seed, used, schedulerName, r);
        } finally {
            if (ownedGenerator != null) {
                ownedGenerator.close();
            }
        }
    }

    // ============================================================================================== checks

    /** What validation derives from a request. */
    private static final class Plan {
        int batch;
        int height, width;      // output pixels
        int latentH, latentW;   // img2img: the input's latent size
        boolean watermark;
    }

    private Plan validate(GenerationRequest r) {
        Plan p = new Plan();
        if (r.steps() < 1 || r.steps() > 10000) {
            throw bad("steps must be between 1 and 10000, got " + r.steps());
        }
        if (!Double.isFinite(r.guidanceScale())) {
            throw bad("guidance scale must be a finite number, got " + r.guidanceScale());
        }
        if (!(r.guidanceRescale() >= 0.0 && r.guidanceRescale() <= 1.0)) {
            throw bad("guidance rescale must be in [0, 1], got " + r.guidanceRescale());
        }
        if (r.imagesPerPrompt() < 1 || r.imagesPerPrompt() > 64) {
            throw bad("images per prompt must be between 1 and 64, got " + r.imagesPerPrompt());
        }
        checkFraction("denoising end", r.denoisingEnd());
        // ---- prompts
        if (r.prompt() != null && r.embeddings() != null) {
            throw bad("give either prompts or precomputed embeddings, not both");
        }
        if (r.prompt() == null && r.embeddings() == null) {
            throw bad("no prompt: give a prompt (it may be \"\") or precomputed embeddings");
        }
        if (r.prompt() != null) {
            if (r.prompt().isEmpty() || r.prompt().stream().anyMatch(s -> s == null)) {
                throw bad("the prompt list is empty or contains null");
            }
            p.batch = r.prompt().size();
            checkList("prompt_2", r.prompt2(), p.batch, false);
        } else {
            if (r.prompt2() != null) {
                throw bad("prompt_2 given with precomputed embeddings; encode it into the embeddings instead");
            }
            long[] s = r.embeddings().promptEmbeds().shape();
            if (s.length != 3) {
                throw bad("prompt embeddings must be [batch, tokens, features], got " + Arrays.toString(s));
            }
            p.batch = (int) s[0];
        }
        checkList("negative prompt", r.negativePrompt(), p.batch, true);
        checkList("negative prompt_2", r.negativePrompt2(), p.batch, true);
        if (r.embeddings() != null && r.negativePrompt() != null && r.embeddings().negativePromptEmbeds() != null) {
            throw bad("give either a negative prompt or negative embeddings, not both");
        }
        if (r.syntax() == PromptSyntax.COMPEL && (r.prompt2() != null || r.negativePrompt2() != null)) {
            throw bad("prompt_2 / negative prompt_2 are not used with the COMPEL syntax (compel encodes one prompt "
                    + "with both text encoders); leave them unset");
        }
        // ---- sizes and the image
        if (img2img) {
            if (r.image() == null) {
                throw bad("the refiner (img2img) needs an image: pixels in [0, 1] or the base's latents");
            }
            if (r.latents() != null) {
                throw bad("initial latents are for text-to-image; give the refiner an image instead");
            }
            if (r.denoisingStart() == null && !(r.strength() > 0.0 && r.strength() <= 1.0)) {
                throw bad("strength must be in (0, 1], got " + r.strength());
            }
            checkFraction("denoising start", r.denoisingStart());
            if (r.denoisingStart() != null && r.denoisingEnd() != null && r.denoisingStart() >= r.denoisingEnd()) {
                throw bad("denoising start " + r.denoisingStart() + " must be below denoising end " + r.denoisingEnd());
            }
            ImageInput img = r.image();
            long latentChannels = unetConfig.inChannels();
            if (img.isLatents()) {
                if (img.channels() != latentChannels) {
                    throw bad("image latents have " + img.channels() + " channels; this UNet takes " + latentChannels);
                }
                p.latentH = img.height();
                p.latentW = img.width();
            } else {
                if (img.height() % 8 != 0 || img.width() % 8 != 0) {
                    throw bad("image size " + img.height() + "x" + img.width() + " (height x width) must be a multiple "
                            + "of 8; resize or crop it");
                }
                p.latentH = img.height() / 8;
                p.latentW = img.width() / 8;
            }
            int total = p.batch * r.imagesPerPrompt();
            if (total % img.batch() != 0 || img.batch() > total) {
                throw bad("cannot share " + img.batch() + " input images among " + total + " outputs "
                        + "(batch x images per prompt must be a multiple of the image count)");
            }
            p.height = p.latentH * 8;
            p.width = p.latentW * 8;
            if ((r.height() != null && r.height() != p.height) || (r.width() != null && r.width() != p.width)) {
                throw bad("img2img output has the input image's size, " + p.height + "x" + p.width + " (height x width); "
                        + "the request asks for " + r.height() + "x" + r.width() + ": leave height and width unset or "
                        + "resize the image");
            }
        } else {
            if (r.image() != null || r.denoisingStart() != null) {
                throw bad("image and denoising start are refiner (img2img) options; use Refiner for them");
            }
            p.height = r.height() != null ? r.height() : defaultSize();
            p.width = r.width() != null ? r.width() : defaultSize();
            if (p.height <= 0 || p.width <= 0 || p.height % 8 != 0 || p.width % 8 != 0) {
                throw bad("height and width must be positive multiples of 8, got " + p.height + "x" + p.width);
            }
            if ((long) p.height * p.width > 8192L * 8192L) {
                throw bad("image size " + p.height + "x" + p.width + " is larger than 8192x8192");
            }
            if (r.latents() != null) {
                long need = (long) p.batch * r.imagesPerPrompt() * unetConfig.inChannels() * (p.height / 8) * (p.width / 8);
                if (r.latents().length != need) {
                    throw bad("initial latents have " + r.latents().length + " values; [" + p.batch * r.imagesPerPrompt()
                            + ", " + unetConfig.inChannels() + ", " + p.height / 8 + ", " + p.width / 8 + "] needs " + need);
                }
            }
        }
        p.watermark = r.output() == GenerationRequest.Output.IMAGE
                && (r.watermark() != null ? r.watermark() : options.watermark());
        if (p.watermark) {
            InvisibleWatermark.checkSize(p.height, p.width);
        }
        // the UNet's added conditioning must fit the time ids this pipeline builds
        UNetConfig u = unetConfig;
        int nIds = img2img && requiresAestheticsScore ? 5 : 6;
        long expected = u.additionTimeEmbedDim() * nIds + pooledDim();
        if (expected != u.projectionClassEmbeddingsInputDim()) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, folder + ": the UNet expects "
                    + u.projectionClassEmbeddingsInputDim() + " added-condition features but " + nIds + " time ids give "
                    + expected + (img2img ? " (check requires_aesthetics_score in model_index.json)"
                    : " (is this a refiner? load it with Refiner)"));
        }
        return p;
    }

    private static void checkFraction(String name, Double f) {
        if (f != null && !(f > 0.0 && f < 1.0)) {
            throw bad(name + " must be in (0, 1), got " + f);
        }
    }

    private static void checkList(String what, List<String> l, int batch, boolean broadcastOne) {
        if (l == null) {
            return;
        }
        if (l.stream().anyMatch(s -> s == null)) {
            throw bad(what + " list contains null");
        }
        if (l.size() != batch && !(broadcastOne && l.size() == 1)) {
            throw bad(l.size() + " " + what + "s for " + batch + " prompts; give one per prompt"
                    + (broadcastOne ? " (or a single one for all)" : ""));
        }
    }

    private static SdxlException bad(String message) {
        return new SdxlException(ErrorCode.INVALID_ARGUMENT, message);
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
        return SchedulerConfig.fromConfig(r.scheduler() == null ? null : r.scheduler().diffusersClass(), schedulerConfig,
                overrides);
    }

    // ============================================================================================== text

    /** {positive, negative-or-null} for the prompt batch (before images-per-prompt repetition). */
    private Cond[] encodePrompts(GenerationRequest r, Plan plan) {
        boolean guided = r.guidanceScale() > 1.0;
        int b = plan.batch;
        Cond pos;
        Cond neg = null;
        if (r.embeddings() != null) {
            PromptEmbeddings e = r.embeddings();
            pos = fromTensors(e.promptEmbeds(), e.pooledPromptEmbeds(), "prompt");
            if (guided && e.negativePromptEmbeds() != null) {
                neg = fromTensors(e.negativePromptEmbeds(), e.negativePooledPromptEmbeds(), "negative prompt");
                if (neg.batch != pos.batch || neg.tokens != pos.tokens || neg.dim != pos.dim) {
                    throw bad("negative embeddings [" + neg.batch + ", " + neg.tokens + ", " + neg.dim
                            + "] must have the prompt embeddings' shape [" + pos.batch + ", " + pos.tokens + ", " + pos.dim + "]");
                }
            }
        } else {
            pos = encodeText(r.prompt(), r.prompt2() != null ? r.prompt2() : r.prompt(), r.syntax(), r.truncateLongPrompts());
        }
        if (guided && neg == null) {
            boolean zeros = r.negativePrompt() == null && forceZerosForEmptyPrompt;
            if (zeros) {
                neg = new Cond(new float[pos.embeds.length], pos.batch, pos.tokens, pos.dim, new float[pos.pooled.length],
                        pos.pooledDim);
            } else {
                List<String> n1 = broadcast(r.negativePrompt() != null ? r.negativePrompt() : List.of(""), b);
                List<String> n2 = r.negativePrompt2() != null ? broadcast(r.negativePrompt2(), b) : n1;
                neg = encodeText(n1, n2, r.syntax(), r.truncateLongPrompts());
            }
            if (neg.tokens != pos.tokens) {  // long prompts: pad both to the same number of 77-token chunks
                Cond[] padded = padToSameLength(pos, neg, r);
                pos = padded[0];
                neg = padded[1];
            }
        }
        checkConditioningWidth(pos);
        return new Cond[] {pos, neg};
    }

    private void checkConditioningWidth(Cond c) {
        long want = unetConfig.crossAttentionDim();
        if (c.dim != want) {
            throw bad("prompt embeddings have " + c.dim + " features; this UNet's cross-attention takes " + want);
        }
        if (c.pooledDim != pooledDim()) {
            throw bad("pooled embeddings have " + c.pooledDim + " features; expected " + pooledDim());
        }
    }

    private static List<String> broadcast(List<String> l, int b) {
        if (l.size() == b) {
            return l;
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            out.add(l.get(0));
        }
        return out;
    }

    private static Cond fromTensors(Tensor embeds, Tensor pooled, String what) {
        long[] s = embeds.shape();
        long[] ps = pooled.shape();
        if (s.length != 3 || ps.length != 2 || ps[0] != s[0]) {
            throw bad(what + " embeddings must be [B, L, D] with pooled [B, P], got " + Arrays.toString(s) + " and "
                    + Arrays.toString(ps));
        }
        return new Cond(embeds.toFloatArray(), (int) s[0], (int) s[1], (int) s[2], pooled.toFloatArray(), (int) ps[1]);
    }

    /**
     * Encodes prompts with every text encoder (prompts1 for the first, prompts2 for text_encoder_2 of the base; the
     * refiner's single encoder reads prompts1, as diffusers zips [prompt, prompt_2] with its one encoder).
     */
    private Cond encodeText(List<String> prompts1, List<String> prompts2, PromptSyntax syntax, boolean truncate) {
        // Textual inversion: embeddings named in the prompts are loaded, names become tokens, multi-vector tokens
        // are expanded (maybe_convert_prompt); ti is null while no embedding is loaded.
        EmbeddingOverlay ti = embeddingsFor(syntax, prompts1, prompts2);
        if (ti != null) {
            prompts1 = ti.expand(withEmbeddingTokens(prompts1, syntax, ti));
            prompts2 = ti.expand(withEmbeddingTokens(prompts2, syntax, ti));
        }
        switch (syntax) {
            case COMPEL:
                return encodeCompel(prompts1, truncate, ti);
            case A1111:
                return encodeA1111(prompts1, prompts2, ti);
            default:
                return encodePlain(prompts1, prompts2, ti);
        }
    }

    private ClipTokenizer tokenizer(EmbeddingOverlay ti, int e) {
        return ti == null ? encoders.get(e).tokenizer() : ti.tokenizer(e);
    }

    private ClipTextModel model(EmbeddingOverlay ti, int e) {
        ClipTextModel m = encoders.get(e).model();
        return ti == null ? m : ti.model(e, m);
    }

    /** diffusers encode_prompt: each encoder's hidden_states[-2] of the 77-token ids, concatenated on features. */
    private Cond encodePlain(List<String> prompts1, List<String> prompts2, EmbeddingOverlay ti) {
        int b = prompts1.size();
        List<float[]> parts = new ArrayList<>();
        int[] dims = new int[encoders.size()];
        float[] pooled = null;
        for (int e = 0; e < encoders.size(); e++) {
            Encoder enc = encoders.get(e);
            List<String> prompts = e == 0 ? prompts1 : prompts2;
            int len = tokenizer(ti, e).modelMaxLength();
            long[] ids = new long[b * len];
            for (int i = 0; i < b; i++) {
                System.arraycopy(tokenizer(ti, e).inputIds(prompts.get(i)), 0, ids, i * len, len);
            }
            try (Tensor idsT = Tensor.ofLongs(ids, b, len); ClipTextOutput out = model(ti, e).forward(idsT)) {
                parts.add(out.penultimate().toFloatArray());
                dims[e] = (int) enc.config().hiddenSize();
                if (enc.projection()) {
                    pooled = out.pooled().toFloatArray();
                }
            }
        }
        int tokens = encoders.get(0).tokenizer().modelMaxLength();
        return new Cond(concatFeatures(parts, dims, b * tokens), b, tokens, sum(dims), pooled, pooledDim());
    }

    private Cond encodeCompel(List<String> prompts, boolean truncate, EmbeddingOverlay ti) {
        List<Compel.TextEncoder> tes = new ArrayList<>();
        for (int e = 0; e < encoders.size(); e++) {
            tes.add(new Compel.TextEncoder(tokenizer(ti, e), model(ti, e), encoders.get(e).projection()));
        }
        try (Compel compel = new Compel(tes, truncate); Compel.Output out = compel.encode(prompts)) {
            long[] s = out.conditioning().shape();
            return new Cond(out.conditioning().toFloatArray(), (int) s[0], (int) s[1], (int) s[2],
                    out.pooled().toFloatArray(), (int) out.pooled().shape()[1]);
        }
    }

    /**
     * AUTOMATIC1111's SDXL conditioning: per encoder, 77-token chunks (start + 75 + end) each encoded on its own,
     * hidden_states[-2] weighted with restore-mean emphasis, chunks concatenated; the two encoders' results
     * concatenated on features; pooled = text_encoder_2's output for the first chunk. Encoders that split a prompt
     * into different numbers of chunks are padded with the empty chunk's encoding.
     */
    private Cond encodeA1111(List<String> prompts1, List<String> prompts2, EmbeddingOverlay ti) {
        int b = prompts1.size();
        float[] pooledAll = new float[b * pooledDim()];
        int[] dims = new int[encoders.size()];
        int maxChunks = 1;
        List<List<List<float[]>>> chunkStore = new ArrayList<>();  // [prompt][encoder][chunk] -> [77, dim]
        for (int i = 0; i < b; i++) {
            List<List<float[]>> encs = new ArrayList<>();
            for (int e = 0; e < encoders.size(); e++) {
                Encoder enc = encoders.get(e);
                dims[e] = (int) enc.config().hiddenSize();
                List<A1111Prompt.Chunk> chunks = A1111Prompt.chunks((e == 0 ? prompts1 : prompts2).get(i), tokenizer(ti, e));
                List<float[]> encoded = new ArrayList<>();
                for (int c = 0; c < chunks.size(); c++) {
                    A1111Prompt.Chunk chunk = chunks.get(c);
                    try (Tensor ids = Tensor.ofLongs(chunk.ids(), 1, chunk.ids().length);
                         ClipTextOutput out = model(ti, e).forward(ids)) {
                        float[] h = out.penultimate().toFloatArray();
                        if (enc.projection() && c == 0) {
                            System.arraycopy(out.pooled().toFloatArray(), 0, pooledAll, i * pooledDim(), pooledDim());
                        }
                        A1111Prompt.applyEmphasis(h, chunk.weights(), dims[e], true);
                        encoded.add(h);
                    }
                }
                maxChunks = Math.max(maxChunks, encoded.size());
                encs.add(encoded);
            }
            chunkStore.add(encs);
        }
        int len = encoders.get(0).tokenizer().modelMaxLength();
        int dim = sum(dims);
        float[] out = new float[b * maxChunks * len * dim];
        for (int i = 0; i < b; i++) {
            for (int e = 0; e < encoders.size(); e++) {
                List<float[]> encoded = chunkStore.get(i).get(e);
                while (encoded.size() < maxChunks) {
                    encoded.add(emptyChunk(e, ti));
                }
                int off = 0;
                for (int k = 0; k < e; k++) {
                    off += dims[k];
                }
                for (int c = 0; c < maxChunks; c++) {
                    float[] h = encoded.get(c);
                    for (int t = 0; t < len; t++) {
                        System.arraycopy(h, t * dims[e], out, ((i * maxChunks + c) * len + t) * dim + off, dims[e]);
                    }
                }
            }
        }
        return new Cond(out, b, maxChunks * len, dim, pooledAll, pooledDim());
    }

    private float[] emptyChunk(int encoder, EmbeddingOverlay ti) {
        A1111Prompt.Chunk chunk = A1111Prompt.chunks("", tokenizer(ti, encoder)).get(0);
        try (Tensor ids = Tensor.ofLongs(chunk.ids(), 1, chunk.ids().length);
             ClipTextOutput out = model(ti, encoder).forward(ids)) {
            return out.penultimate().toFloatArray();
        }
    }

    /** Pads the shorter conditioning with the empty prompt's 77-token encoding (compel's / A1111's padding). */
    private Cond[] padToSameLength(Cond a, Cond b, GenerationRequest r) {
        int tokens = Math.max(a.tokens, b.tokens);
        Cond empty = encodeText(List.of(""), List.of(""), r.syntax() == PromptSyntax.PLAIN ? PromptSyntax.PLAIN : r.syntax(), true);
        return new Cond[] {padWith(a, tokens, empty), padWith(b, tokens, empty)};
    }

    private static Cond padWith(Cond c, int tokens, Cond empty) {
        if (c.tokens == tokens) {
            return c;
        }
        if ((tokens - c.tokens) % empty.tokens != 0) {
            throw bad("cannot pad conditioning of " + c.tokens + " tokens to " + tokens);
        }
        float[] out = new float[c.batch * tokens * c.dim];
        for (int i = 0; i < c.batch; i++) {
            System.arraycopy(c.embeds, i * c.tokens * c.dim, out, i * tokens * c.dim, c.tokens * c.dim);
            for (int t = c.tokens; t < tokens; t += empty.tokens) {
                System.arraycopy(empty.embeds, 0, out, (i * tokens + t) * c.dim, empty.tokens * c.dim);
            }
        }
        return new Cond(out, c.batch, tokens, c.dim, c.pooled, c.pooledDim);
    }

    private static float[] concatFeatures(List<float[]> parts, int[] dims, int rows) {
        int dim = sum(dims);
        float[] out = new float[rows * dim];
        int off = 0;
        for (int e = 0; e < parts.size(); e++) {
            float[] p = parts.get(e);
            for (int row = 0; row < rows; row++) {
                System.arraycopy(p, row * dims[e], out, row * dim + off, dims[e]);
            }
            off += dims[e];
        }
        return out;
    }

    private static int sum(int[] a) {
        int s = 0;
        for (int v : a) {
            s += v;
        }
        return s;
    }

    /** Each batch item repeated n times in a row (diffusers' repeat(1, n, 1).view(b * n, ...)). */
    private static Cond repeat(Cond c, int n) {
        if (n == 1) {
            return c;
        }
        int row = c.tokens * c.dim;
        float[] e = new float[c.batch * n * row];
        float[] p = new float[c.batch * n * c.pooledDim];
        for (int i = 0; i < c.batch; i++) {
            for (int k = 0; k < n; k++) {
                System.arraycopy(c.embeds, i * row, e, (i * n + k) * row, row);
                System.arraycopy(c.pooled, i * c.pooledDim, p, (i * n + k) * c.pooledDim, c.pooledDim);
            }
        }
        return new Cond(e, c.batch * n, c.tokens, c.dim, p, c.pooledDim);
    }

    private static Cond concatBatch(Cond a, Cond b) {
        float[] e = Arrays.copyOf(a.embeds, a.embeds.length + b.embeds.length);
        System.arraycopy(b.embeds, 0, e, a.embeds.length, b.embeds.length);
        float[] p = Arrays.copyOf(a.pooled, a.pooled.length + b.pooled.length);
        System.arraycopy(b.pooled, 0, p, a.pooled.length, b.pooled.length);
        return new Cond(e, a.batch + b.batch, a.tokens, a.dim, p, a.pooledDim);
    }

    // ============================================================================================== textual inversion
    // An overlay on the tokenizers and text encoders (EmbeddingOverlay); loading swaps in a new immutable overlay,
    // so a generation that has started keeps the one it read.

    private final Object embeddingsLock = new Object();
    private volatile EmbeddingOverlay embeddings;  // null: none loaded
    private volatile Path embeddingsDir;

    /**
     * diffusers' {@code load_textual_inversion} for every encoder of this pipeline (clip_l into text_encoder, clip_g
     * into text_encoder_2): the tokens {@code token, token_1, ...} are added to the tokenizers.
     */
    TextualInversion loadTextualInversion(Path file, String token) {
        checkOpen();
        TextualInversion ti = TextualInversion.read(file);
        String t = token != null ? token : "<" + ti.name() + ">";
        synchronized (embeddingsLock) {
            add(new EmbeddingOverlay.Loaded(t, ti));
        }
        return ti;
    }

    private void add(EmbeddingOverlay.Loaded l) {
        List<EmbeddingOverlay.Loaded> all = new ArrayList<>(embeddings == null ? List.of() : embeddings.loaded());
        all.add(l);
        embeddings = EmbeddingOverlay.build(encoders, all);  // validates before anything changes
    }

    /** Removes the embedding loaded as {@code token}; false if there is none. */
    boolean unloadTextualInversion(String token) {
        synchronized (embeddingsLock) {
            if (embeddings == null) {
                return false;
            }
            List<EmbeddingOverlay.Loaded> all = new ArrayList<>(embeddings.loaded());
            if (!all.removeIf(l -> l.token().equals(token))) {
                return false;
            }
            embeddings = all.isEmpty() ? null : EmbeddingOverlay.build(encoders, all);
            return true;
        }
    }

    void unloadTextualInversions() {
        synchronized (embeddingsLock) {
            embeddings = null;
        }
    }

    /** The loaded embeddings by token, in load order. */
    Map<String, TextualInversion> textualInversions() {
        Map<String, TextualInversion> out = new LinkedHashMap<>();
        EmbeddingOverlay o = embeddings;
        if (o != null) {
            o.loaded().forEach(l -> out.put(l.token(), l.embedding()));
        }
        return out;
    }

    /** Where {@code embedding:NAME} and A1111's bare names find NAME.safetensors (null: nowhere). */
    void setEmbeddingsDirectory(Path dir) {
        if (dir != null && !Files.isDirectory(dir)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, dir + ": embeddings directory does not exist");
        }
        embeddingsDir = dir;
    }

    /** Names a prompt may use: the loaded embeddings' file names, then the directory's *.safetensors files. */
    private Map<String, String> embeddingNames(EmbeddingOverlay o) {
        Map<String, String> byName = new LinkedHashMap<>();  // name -> token
        if (o != null) {
            o.loaded().forEach(l -> byName.putIfAbsent(l.embedding().name(), l.token()));
        }
        Path dir = embeddingsDir;
        if (dir != null) {
            try (var files = Files.list(dir)) {
                files.map(f -> f.getFileName().toString()).filter(n -> n.toLowerCase(java.util.Locale.ROOT).endsWith(".safetensors"))
                        .sorted().forEach(n -> byName.putIfAbsent(TextualInversion.nameOf(Path.of(n)), null));
            } catch (java.io.IOException e) {
                throw new SdxlException(ErrorCode.NOT_FOUND, dir + ": embeddings directory cannot be read", e);
            }
        }
        return byName;
    }

    /** The overlay for these prompts, after loading the directory embeddings they name; null when none applies. */
    private EmbeddingOverlay embeddingsFor(PromptSyntax syntax, List<String> prompts1, List<String> prompts2) {
        if (embeddingsDir == null) {
            return embeddings;
        }
        synchronized (embeddingsLock) {
            Map<String, String> names = embeddingNames(embeddings);
            java.util.Set<String> used = new java.util.LinkedHashSet<>();
            for (List<String> list : List.of(prompts1, prompts2)) {
                for (String p : list) {
                    used.addAll(io.sdxl4j.text.EmbeddingReferences.comfyNames(p));
                    if (syntax == PromptSyntax.A1111) {
                        used.addAll(io.sdxl4j.text.EmbeddingReferences.a1111Names(p, names.keySet()));
                    }
                }
            }
            for (String name : used) {
                if (!names.containsKey(name)) {
                    throw new SdxlException(ErrorCode.NOT_FOUND, "prompt names embedding:" + name + ", but there is no "
                            + embeddingsDir.resolve(name + ".safetensors") + " and no loaded embedding of that name");
                }
                if (names.get(name) == null) {  // in the directory, not loaded yet
                    TextualInversion ti = TextualInversion.read(embeddingsDir.resolve(name + ".safetensors"));
                    add(new EmbeddingOverlay.Loaded("<" + name + ">", ti));
                    names.put(name, "<" + name + ">");
                }
            }
            return embeddings;
        }
    }

    /** embedding:NAME (and with the A1111 syntax bare NAMEs) written as the tokens they were loaded as. */
    private List<String> withEmbeddingTokens(List<String> prompts, PromptSyntax syntax, EmbeddingOverlay o) {
        Map<String, String> names = new LinkedHashMap<>();
        o.loaded().forEach(l -> names.putIfAbsent(l.embedding().name(), l.token()));
        List<String> out = new ArrayList<>(prompts.size());
        for (String p : prompts) {
            out.add(io.sdxl4j.text.EmbeddingReferences.rewrite(p, syntax == PromptSyntax.A1111, names.keySet(), names::get));
        }
        return out;
    }

    /** Encoder e's tokenizer with the loaded embeddings' tokens. */
    ClipTokenizer tokenizerWithEmbeddings(int e) {
        EmbeddingOverlay o = embeddings;
        return o == null ? encoders.get(e).tokenizer() : o.tokenizer(e);
    }

    /** The text the tokenizers see for a prompt: embedding names as tokens, multi-vector tokens expanded. */
    String promptForTokenizers(String prompt, PromptSyntax syntax) {
        EmbeddingOverlay o = embeddingsFor(syntax, List.of(prompt), List.of(prompt));
        return o == null ? prompt : o.expand(withEmbeddingTokens(List.of(prompt), syntax, o)).get(0);
    }

    /**
     * The loaded embeddings a request's prompts use (after resolving names), by A1111 name, with A1111's short
     * hash: what its infotext records as "TI hashes".
     */
    Map<String, String> textualInversionHashes(GenerationRequest r) {
        Map<String, String> out = new LinkedHashMap<>();
        EmbeddingOverlay o = embeddings;
        if (o == null) {
            return out;
        }
        List<String> texts = new ArrayList<>();
        for (List<String> l : java.util.Arrays.asList(r.prompt(), r.prompt2(), r.negativePrompt(), r.negativePrompt2())) {
            if (l != null) {
                texts.addAll(withEmbeddingTokens(l, r.syntax(), o));
            }
        }
        java.util.Set<String> tokens = new java.util.HashSet<>();
        for (String t : texts) {
            tokens.addAll(o.tokenizer(0).tokenize(t));
        }
        for (EmbeddingOverlay.Loaded l : o.loaded()) {
            if (tokens.contains(l.token())) {
                // A1111 drops ':' and ',' from the name so that the list stays parseable
                out.put(l.embedding().name().replace(":", "").replace(",", ""), l.embedding().shortHash());
            }
        }
        return out;
    }

    // ============================================================================================== time ids

    /**
     * {positive, negative} time ids. Base: original_size + crops_coords_top_left + target_size; the negative ones
     * only differ when both negative_original_size and negative_target_size are given. Refiner
     * (requires_aesthetics_score): original_size + crops + (aesthetic_score,), negative with its own size, crops and
     * score; without the flag: sizes as the base, the negative with the positive crops (as diffusers does).
     */
    private float[][] timeIds(GenerationRequest r, Plan p) {
        int[] original = r.originalSize() != null ? r.originalSize() : new int[] {p.height, p.width};
        int[] target = r.targetSize() != null ? r.targetSize() : new int[] {p.height, p.width};
        int[] crops = r.cropsCoordsTopLeft();
        int[] negCrops = r.negativeCropsCoordsTopLeft();
        if (!img2img) {
            float[] pos = ids(original, crops, target);
            float[] neg = r.negativeOriginalSize() != null && r.negativeTargetSize() != null
                    ? ids(r.negativeOriginalSize(), negCrops, r.negativeTargetSize()) : pos;
            return new float[][] {pos, neg};
        }
        int[] negOriginal = r.negativeOriginalSize() != null ? r.negativeOriginalSize() : original;
        int[] negTarget = r.negativeTargetSize() != null ? r.negativeTargetSize() : target;
        if (requiresAestheticsScore) {
            return new float[][] {
                ids(original, crops, new int[0], (float) r.aestheticScore()),
                ids(negOriginal, negCrops, new int[0], (float) r.negativeAestheticScore())};
        }
        return new float[][] {ids(original, crops, target), ids(negOriginal, crops, negTarget)};
    }

    private static float[] ids(int[] a, int[] b, int[] c, float... extra) {
        float[] out = new float[a.length + b.length + c.length + extra.length];
        int k = 0;
        for (int v : a) {
            out[k++] = v;
        }
        for (int v : b) {
            out[k++] = v;
        }
        for (int v : c) {
            out[k++] = v;
        }
        for (float v : extra) {
            out[k++] = v;
        }
        return out;
    }

    /** Base: cat([neg, pos]).repeat(B*n, 1) when guiding: rows alternate negative, positive (as diffusers builds them). */
    private static float[] stackTimeIdsBase(float[][] pn, int total, boolean guided) {
        List<float[]> rows = new ArrayList<>();
        for (int i = 0; i < total; i++) {
            if (guided) {
                rows.add(pn[1]);
            }
            rows.add(pn[0]);
        }
        return flatten(rows);
    }

    /** Refiner: cat([neg.repeat(B*n), pos.repeat(B*n)]) when guiding. */
    private static float[] stackTimeIdsImg2Img(float[][] pn, int total, boolean guided) {
        List<float[]> rows = new ArrayList<>();
        if (guided) {
            for (int i = 0; i < total; i++) {
                rows.add(pn[1]);
            }
        }
        for (int i = 0; i < total; i++) {
            rows.add(pn[0]);
        }
        return flatten(rows);
    }

    private static float[] flatten(List<float[]> rows) {
        int w = rows.get(0).length;
        float[] out = new float[rows.size() * w];
        for (int i = 0; i < rows.size(); i++) {
            System.arraycopy(rows.get(i), 0, out, i * w, w);
        }
        return out;
    }

    // ============================================================================================== images

    /**
     * img2img prepare_latents: latents are used as they are; pixels are normalised to [-1, 1], encoded, sampled
     * with the generator (before the noise draw) and scaled by scaling_factor; the batch is tiled to the output
     * count; with addNoise (no denoising_start) scheduler.add_noise at the first timestep.
     */
    private float[] prepareImageLatents(ImageInput img, int total, Plan plan, Scheduler scheduler, int begin, boolean addNoise,
                                        Generator g) {
        float[] init;
        if (img.isLatents()) {
            init = img.data();
        } else {
            float[] px = img.data();
            for (int i = 0; i < px.length; i++) {
                px[i] = 2.0f * px[i] - 1.0f;  // VaeImageProcessor.normalize
            }
            try (Tensor image = Tensor.of(px, img.batch(), 3, img.height(), img.width());
                 VaeUse use = new VaeUse(vae);
                 LatentDistribution dist = use.model.encode(image, options.vaeTiling());
                 Tensor noise = g.randn(dist.mean().shape())) {
                float[] mean = dist.mean().toFloatArray();
                float[] std = dist.std().toFloatArray();
                float[] eps = noise.toFloatArray();
                float sf = (float) vaeConfig.scalingFactor();
                init = new float[mean.length];
                for (int i = 0; i < init.length; i++) {
                    float sample = mean[i] + std[i] * eps[i];  // DiagonalGaussianDistribution.sample
                    init[i] = sf * sample;
                }
            }
        }
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

    /** latents / scaling_factor -> VAE decode -> watermark -> (x / 2 + 0.5).clamp(0, 1) as [N, H, W, 3]. */
    private float[] decode(float[] latents, long[] shape, Plan plan, GenerationRequest r) {
        float sf = (float) vaeConfig.scalingFactor();
        float[] z = new float[latents.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = latents[i] / sf;
        }
        float[] img;
        try (Tensor zt = Tensor.of(z, shape); VaeUse use = new VaeUse(vae); Tensor decoded = use.model.decode(zt, options.vaeTiling())) {
            img = decoded.toFloatArray();
        }
        int n = (int) shape[0];
        int h = plan.height, w = plan.width;
        if (plan.watermark) {
            img = WATERMARK.apply(img, n, h, w);
        }
        float[] out = new float[img.length];
        int plane = h * w;
        for (int b = 0; b < n; b++) {
            for (int c = 0; c < 3; c++) {
                for (int i = 0; i < plane; i++) {
                    float v = img[(b * 3 + c) * plane + i] / 2.0f + 0.5f;
                    out[(b * plane + i) * 3 + c] = v < 0f ? 0f : (v > 1f ? 1f : v);  // NaN stays NaN
                }
            }
        }
        return out;
    }

    /** The VAE for one encode or decode (try-with-resources: released after). */
    private static final class VaeUse implements AutoCloseable {
        final AutoencoderKL model;
        private final Slot<AutoencoderKL> slot;

        VaeUse(Slot<AutoencoderKL> slot) {
            this.slot = slot;
            this.model = slot.acquire();
        }

        @Override
        public void close() {
            slot.release();
        }
    }

    // ============================================================================================== lifetime

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        closeAll(owned);
    }

    private static void closeAll(List<AutoCloseable> list) {
        for (int i = list.size() - 1; i >= 0; i--) {
            try {
                list.get(i).close();
            } catch (Exception ignored) {
                // closing native handles does not fail; keep closing the rest
            }
        }
        list.clear();
    }
}
