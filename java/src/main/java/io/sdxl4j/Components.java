package io.sdxl4j;

import io.sdxl4j.models.AutoencoderKL;
import io.sdxl4j.models.ClipTextConfig;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.DiffusersFolder;
import io.sdxl4j.models.SingleFileCheckpoint;
import io.sdxl4j.models.UNet2DConditionModel;
import io.sdxl4j.models.UNetConfig;
import io.sdxl4j.models.VaeConfig;
import io.sdxl4j.text.ClipTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What a {@link ModelSource} yields: the parts of one SDXL pipeline, each model in a {@link Slot} (loaded now, or
 * on use with offload), with the configs and model_index flags the run needs. Parts shared from another pipeline
 * (a refiner's text_encoder_2 and VAE taken from its base) are used but not owned: closing closes only its own.
 */
final class Components implements AutoCloseable {
    final Path folder;                      // the diffusers folder of the configs (a single file: its config folder)
    final SingleFileCheckpoint checkpoint;  // the single file the weights come from, or null
    final List<SdxlEngine.Encoder> encoders;  // base: text_encoder, text_encoder_2; refiner: text_encoder_2
    final Slot<UNet2DConditionModel> unet;
    final UNetConfig unetConfig;
    final Slot<AutoencoderKL> vae;
    final VaeConfig vaeConfig;
    final Path schedulerConfig;
    final boolean forceZerosForEmptyPrompt;
    final boolean requiresAestheticsScore;
    private final List<AutoCloseable> owned;

    private Components(Path folder, SingleFileCheckpoint checkpoint, List<SdxlEngine.Encoder> encoders,
                       Slot<UNet2DConditionModel> unet, UNetConfig unetConfig, Slot<AutoencoderKL> vae,
                       VaeConfig vaeConfig, Path schedulerConfig, boolean forceZeros, boolean requiresAesthetics,
                       List<AutoCloseable> owned) {
        this.folder = folder;
        this.checkpoint = checkpoint;
        this.encoders = encoders;
        this.unet = unet;
        this.unetConfig = unetConfig;
        this.vae = vae;
        this.vaeConfig = vaeConfig;
        this.schedulerConfig = schedulerConfig;
        this.forceZerosForEmptyPrompt = forceZeros;
        this.requiresAestheticsScore = requiresAesthetics;
        this.owned = owned;
    }

    /** Whether this pipeline owns the slot (false for one shared from another pipeline). */
    boolean owns(Slot<?> slot) {
        return owned.contains(slot);
    }

    /** The encoders whose models this pipeline owns (a refiner sharing its base's text_encoder_2 has none). */
    List<SdxlEngine.Encoder> ownEncoders() {
        return encoders.stream().filter(e -> owns(e.slot())).toList();
    }

    int defaultSize() {
        return (int) unetConfig.sampleSize() * 8;
    }

    int pooledDim() {
        return (int) encoders.get(encoders.size() - 1).config().projectionDim();
    }

    /**
     * Assembles the components from the diffusers folder {@code folder} (configs, tokenizers, scheduler config,
     * model_index flags) with the weights {@code weights} loads; {@code owned} holds what was opened before (the
     * checkpoint) and gets every slot made here. On an error everything in {@code owned} is closed.
     */
    static Components assemble(Path folder, SingleFileCheckpoint ck, ModelSource.Weights weights,
                               PipelineOptions options, Components shareFrom, List<AutoCloseable> owned) {
        checkDevice(options);
        DiffusersFolder df = DiffusersFolder.open(folder);
        try {
            String variant = options.variant() == null || options.variant().isEmpty() ? null : options.variant();
            Device device = options.device();
            DType dtype = options.dtype();
            boolean offload = options.cpuOffload();
            List<SdxlEngine.Encoder> encoders = new ArrayList<>();
            if (df.componentClass("text_encoder").isPresent()) {
                ClipTokenizer tok = ClipTokenizer.load(df.component("tokenizer", "CLIPTokenizer"));
                String v = variantIn(df, "text_encoder", variant);
                ClipTextConfig cfg = ClipTextConfig.read(df.component("text_encoder").resolve("config.json"));
                Slot<ClipTextModel> te = own(owned, new Slot<>(
                        weights.textEncoder(df, "text_encoder", cfg, v, device, dtype), offload));
                encoders.add(new SdxlEngine.Encoder(tok, te, cfg, cfg.withProjection()));
            }
            SdxlEngine.Encoder second;
            if (shareFrom != null) {
                second = shareFrom.encoders.get(shareFrom.encoders.size() - 1);
            } else {
                ClipTokenizer tok2 = ClipTokenizer.load(df.component("tokenizer_2", "CLIPTokenizer"));
                String v = variantIn(df, "text_encoder_2", variant);
                ClipTextConfig cfg = ClipTextConfig.read(df.component("text_encoder_2").resolve("config.json"));
                Slot<ClipTextModel> te2 = own(owned, new Slot<>(
                        weights.textEncoder(df, "text_encoder_2", cfg, v, device, dtype), offload));
                second = new SdxlEngine.Encoder(tok2, te2, cfg, cfg.withProjection());
            }
            if (!second.projection()) {
                throw new SdxlException(ErrorCode.BAD_MODEL_FILE, folder + ": text_encoder_2 must be a "
                        + "CLIPTextModelWithProjection (SDXL takes its pooled output)");
            }
            encoders.add(second);
            String uv = variantIn(df, "unet", variant);
            Slot<UNet2DConditionModel> unet = own(owned, new Slot<>(weights.unet(df, uv, device, dtype), offload));
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
                vae = own(owned, new Slot<>(weights.vae(df, vaeConfig, vv, device, vaeType), offload));
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
            UNetConfig unetConfig = unet.get().config();
            unet.release();  // the config was read through it; an offloaded UNet goes until the loop needs it
            return new Components(folder, ck, List.copyOf(encoders), unet, unetConfig, vae, vaeConfig, sched,
                    forceZeros, aesthetics, owned);
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

    static void checkDevice(PipelineOptions options) {
        if (options.device() == Device.CUDA && !Sdxl4j.cudaAvailable()) {
            throw new SdxlException(ErrorCode.DEVICE_ERROR, "CUDA requested but unavailable: " + Sdxl4j.cudaStatus()
                    + (Sdxl4j.cudaCompiled() ? "" : " (this build has no CUDA backend)") + "; use Device.CPU");
        }
        if (options.device() == Device.CPU && options.dtype() != DType.F32) {
            throw new SdxlException(ErrorCode.UNSUPPORTED, "the CPU backend computes in F32 (fp16/bf16 weight files are "
                    + "widened when loaded: use the fp16 variant with dtype F32); " + options.dtype() + " needs CUDA");
        }
    }

    /** The same parts owning none of them: another pipeline over these models (closing it closes nothing). */
    Components sharedView() {
        return new Components(folder, checkpoint, encoders, unet, unetConfig, vae, vaeConfig, schedulerConfig,
                forceZerosForEmptyPrompt, requiresAestheticsScore, new ArrayList<>());
    }

    /** Closes what this pipeline owns, last opened first. */
    @Override
    public void close() {
        closeAll(owned);
    }

    static void closeAll(List<AutoCloseable> list) {
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
