package io.sdxl4j.cli;

import io.sdxl4j.CancellationToken;
import io.sdxl4j.DType;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.FewStepPreset;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.Generator;
import io.sdxl4j.ImageInput;
import io.sdxl4j.LoraMode;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.PromptSyntax;
import io.sdxl4j.Refiner;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import io.sdxl4j.images.GenerationParameters;
import io.sdxl4j.images.Images;
import io.sdxl4j.models.HuggingFaceCache;
import io.sdxl4j.models.VaeTiling;
import io.sdxl4j.text.LoraTags;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code sdxl4j generate}: the seed walkthrough's calls from the command line. Text to image with the base model;
 * with {@code --refiner} the ensemble of experts (base until {@code --high-noise-frac}, the refiner after it, one
 * generator); with {@code --init-image} image to image (SDEdit with {@code --strength}) on the refiner, or on the
 * base model when no refiner is given. Writes PNGs carrying AUTOMATIC1111's {@code parameters} text chunk.
 */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Generate images with Stable Diffusion XL (diffusers' StableDiffusionXLPipeline / Img2ImgPipeline).",
            "With no --model and no SDXL in the Hugging Face cache, runs the small bundled test model (noise images)."})
public final class Generate implements Callable<Integer> {
    @Spec
    CommandSpec spec;  // which options were given explicitly (--preset yields to them)
    static final String DEFAULT_REPO = ModelArguments.DEFAULT_REPO;
    static final String DEFAULT_PROMPT = "Colorful Roaring Lion sitting on a victorian couch, flat icon, vector";

    @Option(names = {"-p", "--prompt"}, description = "the prompt (default: the seed walkthrough's lion)")
    String prompt;
    @Option(names = "--prompt-2", description = "prompt for text_encoder_2 (default: the prompt)")
    String prompt2;
    @Option(names = {"-n", "--negative-prompt"}, description = "what to avoid")
    String negative;
    @Option(names = "--negative-prompt-2", description = "negative prompt for text_encoder_2")
    String negative2;
    @Option(names = "--syntax", defaultValue = "plain", description = "prompt syntax: plain | compel | a1111 (default: ${DEFAULT-VALUE})")
    String syntax;
    @Option(names = "--no-truncate", description = "compel: encode long prompts in 75-token chunks instead of cutting at 77 tokens")
    boolean noTruncate;
    @Option(names = {"-s", "--steps"}, defaultValue = "50", description = "denoising steps (default: ${DEFAULT-VALUE})")
    int steps;
    @Option(names = {"-W", "--width"}, description = "width in pixels, a multiple of 8 (default: the model's, 1024 for SDXL)")
    Integer width;
    @Option(names = {"-H", "--height"}, description = "height in pixels, a multiple of 8 (default: the model's)")
    Integer height;
    @Option(names = "--seed", description = "seed of the torch-compatible generator (default: random)")
    Long seed;
    @Option(names = {"-g", "--guidance", "--cfg"}, defaultValue = "5.0", description = "guidance scale; 1 turns classifier-free guidance off (default: ${DEFAULT-VALUE})")
    double guidance;
    @Option(names = "--guidance-rescale", defaultValue = "0.0", description = "guidance rescale in [0, 1] (default: ${DEFAULT-VALUE})")
    double guidanceRescale;
    @Option(names = "--preset", description = "few-step model settings: turbo (SDXL-Turbo: 1 step, Euler a trailing), "
            + "lightning (SDXL-Lightning: 4 steps, Euler trailing), hyper (Hyper-SDXL: 8 steps, DDIM trailing); guidance off. "
            + "An explicit --steps, --guidance or --scheduler still wins")
    String preset;
    @Option(names = "--scheduler", description = "scheduler: euler, euler_a, heun, dpmpp_2m, \"DPM++ 2M Karras\", ddim, ... or a diffusers class (default: the model's)")
    String scheduler;
    @Option(names = "--images", defaultValue = "1", description = "images per prompt (default: ${DEFAULT-VALUE})")
    int images;
    @Option(names = {"-m", "--model"}, description = "base model: a diffusers folder, a single-file SDXL checkpoint (.safetensors in the SGM/A1111 layout) or a Hugging Face repo id in the local cache (default: $SDXL4J_MODEL, then "
            + DEFAULT_REPO + " in the cache, then the bundled test model)")
    String model;
    @Option(names = "--variant", description = "weight file variant, e.g. fp16")
    String variant;
    @Option(names = "--config", description = "for a single-file --model/--refiner (.safetensors, SGM/A1111 layout): a diffusers folder whose component configs, tokenizers and scheduler config to use (default: the SDXL 1.0 configs shipped with sdxl4j)")
    Path config;

    @Option(names = "--refiner", description = "refiner model (folder or repo id): base and refiner as an ensemble of experts, or the img2img model")
    String refiner;
    @Option(names = {"--high-noise-frac", "--denoising-end"}, defaultValue = "0.8", description = "with --refiner: the fraction of the schedule the base runs (default: ${DEFAULT-VALUE})")
    double highNoiseFrac;
    @Option(names = {"-i", "--init-image"}, description = "image to image: the input picture (PNG/JPEG)")
    Path initImage;
    @Option(names = "--strength", defaultValue = "0.3", description = "image to image: how much of the schedule runs, in (0, 1] (default: ${DEFAULT-VALUE})")
    double strength;
    @Option(names = "--aesthetic-score", defaultValue = "6.0", description = "refiner: aesthetic score (default: ${DEFAULT-VALUE})")
    double aestheticScore;
    @Option(names = "--negative-aesthetic-score", defaultValue = "2.5", description = "refiner: negative aesthetic score (default: ${DEFAULT-VALUE})")
    double negativeAestheticScore;
    @Option(names = "--watermark", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "apply diffusers' invisible watermark (default: on; --no-watermark turns it off)")
    boolean watermark;
    @Option(names = {"-o", "--output"}, description = "output PNG (default: sdxl4j-<seed>.png; -1, -2, ... added for several images)")
    Path output;
    @Option(names = "--device", defaultValue = "cpu", description = "cpu | cuda | cuda:N (default: ${DEFAULT-VALUE})")
    String device;
    @Option(names = "--dtype", defaultValue = "fp32", description = "fp32 | fp16 | bf16 (default: ${DEFAULT-VALUE})")
    String dtype;
    @Option(names = "--cpu-offload", description = "model-level CPU offload (components on the device only while they run)")
    boolean cpuOffload;
    @Option(names = "--vae", description = "another VAE instead of the model's: a diffusers VAE folder (e.g. the "
            + "fp16-fix VAE, which runs in fp16), or one .safetensors file, diffusers-named or in the A1111/LDM layout "
            + "(sdxl_vae.safetensors), read with the model's VAE config")
    Path vae;
    @Option(names = "--vae-tiling", description = "decode/encode large images tile by tile (diffusers' enable_vae_tiling: "
            + "less memory, slightly different pixels where tiles overlap)")
    boolean vaeTiling;
    @Option(names = "--vae-tile-size", description = "VAE tile side in pixels (implies --vae-tiling; default: the VAE's sample_size, 1024 for SDXL)")
    Long vaeTileSize;
    @Option(names = "--threads", description = "CPU threads (default: all cores)")
    Integer threads;
    @Option(names = "--embedding", paramLabel = "FILE[:TOKEN]", description = "textual-inversion embedding (SDXL clip_l/clip_g "
            + "safetensors), invoked in prompts by TOKEN (default: <NAME>, NAME the file name without .safetensors); repeatable")
    List<String> embeddingFiles = new ArrayList<>();
    @Option(names = "--embeddings-dir", paramLabel = "DIR", description = "folder of NAME.safetensors embeddings that prompts "
            + "name as embedding:NAME (ComfyUI) or, with --syntax a1111, as the bare NAME (AUTOMATIC1111)")
    Path embeddingsDir;

    @Option(names = "--lora", description = "LoRA for the model that generates (the base; with --init-image the "
            + "image-to-image model): FILE or FILE:SCALE (default scale 1.0; kohya/A1111, LyCORIS LoHa/LoKr or diffusers/PEFT "
            + ".safetensors); repeatable; fused unless --lora-mode unfused")
    List<String> loraArgs = new ArrayList<>();
    @Option(names = "--refiner-lora", paramLabel = "FILE[:SCALE]", description = "LoRA made for the --refiner model (its UNet "
            + "and text_encoder_2); repeatable. Without --init-image the refiner uses the base's text_encoder_2, which keeps "
            + "the base's LoRAs: text_encoder_2 modules are then refused unless --lora-lenient")
    List<String> refinerLoraArgs = new ArrayList<>();
    @Option(names = "--lora-dir", description = "folder where A1111 prompt tags <lora:NAME:WEIGHT> find NAME.safetensors (searched recursively)")
    Path loraDir;
    @Option(names = "--lora-lenient", description = "skip LoRA keys and modules that match nothing instead of refusing the file")
    boolean loraLenient;
    @Option(names = "--lora-mode", paramLabel = "fused|unfused", description = "fused into the weights (default: no cost per step) or unfused (applied at run time beside the unchanged weights)")
    String loraMode = "fused";

    private final PrintStream err = System.err;

    @Override
    public Integer call() {
        Sdxl4j.load();
        if (threads != null) {
            Sdxl4j.setNumThreads(threads);
        }
        if (!refinerLoraArgs.isEmpty() && refiner == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "--refiner-lora is for the --refiner model; give --refiner "
                    + "(or use --lora for the model that generates)");
        }
        Path modelPath = resolveModel();
        PipelineOptions options = new PipelineOptions(variant, ModelArguments.device(device), dtype(dtype), watermark, cpuOffload,
                vaeTiling || vaeTileSize != null ? VaeTiling.auto(vaeTileSize != null ? vaeTileSize : 0) : VaeTiling.OFF,
                vae);
        long seedUsed = seed != null ? seed : new SecureRandom().nextLong() & 0x7fffffffffffffffL;
        GenerationRequest request = request(seedUsed);
        CancellationToken cancel = new CancellationToken();
        Thread hook = new Thread(cancel::cancel);  // Ctrl-C: stop after the current step, release everything
        Runtime.getRuntime().addShutdownHook(hook);
        long t0 = System.nanoTime();
        try (Generator g = Generator.seeded(seedUsed)) {
            GenerationResult result;
            String refinerLabel = null;
            Map<String, String> tiHashes;
            if (initImage != null) {
                int[] hw = new int[2];
                ImageInput image = ImageInput.pixels(Images.loadForImg2Img(initImage, hw), 1, hw[0], hw[1]);
                Path img2imgModel = refiner != null ? resolve(refiner) : modelPath;
                GenerationRequest r = withoutSize(request).toBuilder().image(image).strength(strength).aestheticScore(aestheticScore)
                        .negativeAestheticScore(negativeAestheticScore).build();
                try (Refiner pipe = openRefiner(img2imgModel, options)) {
                    loadLoras(pipe::loadLora, loraArgs, true);
                    if (refiner != null) {
                        loadLoras(pipe::loadLora, refinerLoraArgs, false);
                    }
                    loraHashes = pipe.loraHashes();
                    if (loraHashes != null) {
                        err.println("LoRAs: " + pipe.loras());
                    }
                    embeddings(pipe::loadTextualInversion, pipe::setEmbeddingsDirectory);
                    result = pipe.generate(r, g, progress("img2img"), cancel);
                    tiHashes = pipe.textualInversionHashes(r);
                }
            } else if (refiner != null) {
                try (StableDiffusionXL base = openBase(modelPath, options);
                     Refiner ref = base.loadRefiner(resolve(refiner), options)) {
                    loadLoras(ref::loadLora, refinerLoraArgs, false);
                    if (ref.loraHashes() != null) {
                        loraHashes = loraHashes == null ? ref.loraHashes() : loraHashes + ", " + ref.loraHashes();
                        err.println("Refiner LoRAs: " + ref.loras());
                    }
                    embeddings(base::loadTextualInversion, base::setEmbeddingsDirectory);
                    embeddings(ref::loadTextualInversion, ref::setEmbeddingsDirectory);
                    GenerationResult latents = base.generate(request.toBuilder().denoisingEnd(highNoiseFrac)
                            .output(GenerationRequest.Output.LATENT).build(), g, progress("base"), cancel);
                    long[] s = latents.latentShape();
                    GenerationRequest refine = withoutSize(request).toBuilder()
                            .image(ImageInput.latents(latents.latents(), (int) s[0], (int) s[1], (int) s[2], (int) s[3]))
                            .denoisingStart(highNoiseFrac).aestheticScore(aestheticScore)
                            .negativeAestheticScore(negativeAestheticScore).build();
                    result = ref.generate(refine, g, progress("refiner"), cancel);
                    tiHashes = base.textualInversionHashes(request);
                    refinerLabel = ref.folder().getFileName().toString();
                    modelHash = base.modelHash();
                }
            } else {
                try (StableDiffusionXL base = openBase(modelPath, options)) {
                    embeddings(base::loadTextualInversion, base::setEmbeddingsDirectory);
                    result = base.generate(request, g, progress("base"), cancel);
                    modelHash = base.modelHash();
                    tiHashes = base.textualInversionHashes(request);
                }
            }
            List<Path> written = write(result, modelPath, refinerLabel, tiHashes);
            err.printf(Locale.ROOT, "%d image%s %dx%d in %.1f s (seed %d, %s)%n", result.count(), result.count() == 1 ? "" : "s",
                    result.width(), result.height(), (System.nanoTime() - t0) / 1e9, seedUsed, result.schedulerName());
            written.forEach(p -> System.out.println(p.toAbsolutePath()));
            return 0;
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException ignored) {
                // already shutting down
            }
        }
    }

    private GenerationRequest request(long seedUsed) {
        // A1111's <lora:name:weight> tags: cut out of the prompt text, loaded from --lora-dir.
        String shownPrompt = prompt != null ? prompt : DEFAULT_PROMPT;
        LoraTags.Parsed p1 = LoraTags.parse(shownPrompt);
        LoraTags.Parsed p2 = LoraTags.parse(prompt2);
        promptTags.addAll(p1.loras());
        promptTags.addAll(p2.loras());
        if (!promptTags.isEmpty()) {
            infotextPrompt = shownPrompt;  // A1111 records the prompt as written, tags included
        }
        GenerationRequest.Builder b = GenerationRequest.builder()
                .prompt(p1.prompt()).prompt2(p2.prompt()).negativePrompt(negative).negativePrompt2(negative2)
                .syntax(syntax(syntax)).truncateLongPrompts(!noTruncate).steps(steps).guidanceScale(guidance)
                .guidanceRescale(guidanceRescale).imagesPerPrompt(images).seed(seedUsed);
        if (width != null) {
            b.width(width);
        }
        if (height != null) {
            b.height(height);
        }
        if (preset != null) {  // the preset's settings, except those given on the command line
            FewStepPreset fp = FewStepPreset.fromName(preset);
            CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
            if (!parsed.hasMatchedOption("--steps")) {
                b.steps(fp.steps());
            }
            if (!parsed.hasMatchedOption("--guidance")) {
                b.guidanceScale(fp.guidanceScale());
            }
            b.scheduler(fp.scheduler());
        }
        if (scheduler != null) {
            b.scheduler(SchedulerKind.fromName(scheduler));
        }
        return b.build();
    }

    // img2img / refiner calls take their size from the image
    private static GenerationRequest withoutSize(GenerationRequest r) {
        GenerationRequest.Builder b = GenerationRequest.builder().prompts(r.prompt()).prompts2(r.prompt2())
                .negativePrompts(r.negativePrompt()).negativePrompts2(r.negativePrompt2()).syntax(r.syntax())
                .truncateLongPrompts(r.truncateLongPrompts()).steps(r.steps()).guidanceScale(r.guidanceScale())
                .guidanceRescale(r.guidanceRescale()).imagesPerPrompt(r.imagesPerPrompt()).seed(r.seed()).scheduler(r.scheduler());
        return b.build();
    }

    /** A progress bar on stderr driven by the step callback. */
    private static io.sdxl4j.StepCallback progress(String label) {
        ProgressBar bar = new ProgressBar(label);
        return step -> {
            bar.step(step.step(), step.totalSteps());
            if (step.step() == step.totalSteps()) {
                bar.finish();
            }
        };
    }

    /** --embedding FILE[:TOKEN] (the last ':' splits off a token, unless what follows is a path) and --embeddings-dir. */
    private void embeddings(java.util.function.BiFunction<Path, String, ?> load, java.util.function.Consumer<Path> dir) {
        for (String spec : embeddingFiles) {
            String[] ft = embeddingSpec(spec);
            load.apply(Path.of(ft[0]), ft[1]);
        }
        if (embeddingsDir != null) {
            dir.accept(embeddingsDir);
        }
    }

    /** "FILE" -> {FILE, null}; "FILE:TOKEN" -> {FILE, TOKEN} (a file name may itself hold ':' when TOKEN is given). */
    static String[] embeddingSpec(String spec) {
        int colon = spec.lastIndexOf(':');
        if (colon > 0 && spec.substring(0, colon).toLowerCase(Locale.ROOT).endsWith(".safetensors")) {
            String token = spec.substring(colon + 1);
            if (token.isEmpty()) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "--embedding " + spec + ": empty token after ':'");
            }
            return new String[] {spec.substring(0, colon), token};
        }
        return new String[] {spec, null};
    }

    private List<Path> write(GenerationResult result, Path modelPath, String refinerLabel, Map<String, String> tiHashes) {
        List<Path> out = new ArrayList<>();
        Path base = output != null ? output : Path.of("sdxl4j-" + result.seed() + ".png");
        for (int i = 0; i < result.count(); i++) {
            Path file = result.count() == 1 ? base : suffixed(base, i + 1);
            GenerationParameters.Builder p = result.parametersBuilder(i);
            if (modelHash != null) {
                p.modelHash(modelHash);  // A1111: the first 10 hex digits of the checkpoint's SHA-256
            }
            p.model(modelName(modelPath));
            if (infotextPrompt != null) {
                p.prompt(infotextPrompt);
            }
            if (!optionLoraTags.isEmpty()) {  // so that A1111 replaying the infotext applies the --lora files too
                p.prompt(p.build().prompt() + " " + String.join(" ", optionLoraTags));
            }
            if (loraHashes != null) {
                p.extra("Lora hashes", loraHashes);  // A1111: "name: first 12 hex of the tensor data's SHA-256, ..."
            }
            if (refinerLabel != null) {
                p.refiner(refinerLabel).refinerSwitchAt(highNoiseFrac);
            }
            if (!tiHashes.isEmpty()) {  // A1111: TI hashes: "name: hash, name: hash"
                StringBuilder ti = new StringBuilder();
                tiHashes.forEach((name, hash) -> ti.append(ti.length() == 0 ? "" : ", ").append(name).append(": ").append(hash));
                p.extra("TI hashes", ti.toString());
            }
            Map<String, String> text = new LinkedHashMap<>();
            text.put("parameters", p.build().toInfotext());
            Images.writePng(result.image(i), file, text);
            out.add(file);
        }
        return out;
    }

    /** Set when the base model is a single file: its A1111 short hash for the PNG's parameters. */
    private String modelHash;

    /** A1111 records a checkpoint by its file name without the extension; a folder by its name. */
    private static String modelName(Path model) {
        String name = model.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return Files.isRegularFile(model) && dot > 0 ? name.substring(0, dot) : name;
    }

    private final List<LoraTags.Tag> promptTags = new ArrayList<>();
    private String infotextPrompt;
    private final List<String> optionLoraTags = new ArrayList<>();  // <lora:NAME:SCALE> for each --lora
    private String loraHashes;

    private StableDiffusionXL openBase(Path model, PipelineOptions options) {
        StableDiffusionXL base = Files.isRegularFile(model) ? StableDiffusionXL.fromSingleFile(model, config, options)
                : StableDiffusionXL.load(model, options);
        try {
            loadLoras(base::loadLora, loraArgs, true);
            loraHashes = base.loraHashes();
            if (loraHashes != null) {
                err.println("LoRAs: " + base.loras());
            }
        } catch (RuntimeException e) {
            base.close();
            throw e;
        }
        return base;
    }

    /** loadLora of either pipeline. */
    private interface LoraTarget {
        String loadLora(Path file, double scale, LoraMode mode, boolean lenient);
    }

    /** FILE[:SCALE] arguments, and with {@code promptTags} the prompt's {@code <lora:NAME:WEIGHT>} tags, fused into a pipeline. */
    private void loadLoras(LoraTarget target, List<String> args, boolean withPromptTags) {
        LoraMode mode = LoraMode.fromName(loraMode);
        for (String arg : args) {
            Object[] fs = loraArg(arg);
            String name = target.loadLora((Path) fs[0], (Double) fs[1], mode, loraLenient);
            if (withPromptTags) {  // the generating model's: written into the infotext's prompt as A1111 tags
                optionLoraTags.add("<lora:" + name + ":" + BigDecimal.valueOf((Double) fs[1]).stripTrailingZeros()
                        .toPlainString() + ">");
            }
        }
        if (withPromptTags) {
            for (LoraTags.Tag t : promptTags) {
                target.loadLora(findLora(t.name()), t.weight(), mode, loraLenient);
            }
        }
    }

    /** FILE or FILE:SCALE (a trailing ":number"; anything else is part of the file name). */
    static Object[] loraArg(String arg) {
        int colon = arg.lastIndexOf(':');
        if (colon > 0) {
            try {
                return new Object[] {Path.of(arg.substring(0, colon)), Double.parseDouble(arg.substring(colon + 1))};
            } catch (NumberFormatException ignored) {
                // a path with a colon
            }
        }
        return new Object[] {Path.of(arg), 1.0};
    }

    /** A1111: a LoRA is found by its file name (without .safetensors) anywhere under the LoRA folder. */
    private Path findLora(String name) {
        if (loraDir == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the prompt names <lora:" + name
                    + ":...>; give the folder of LoRA files with --lora-dir");
        }
        Path direct = loraDir.resolve(name + ".safetensors");
        if (Files.isRegularFile(direct)) {
            return direct;
        }
        try (var files = Files.walk(loraDir)) {
            return files.filter(f -> f.getFileName().toString().equals(name + ".safetensors")).findFirst()
                    .orElseThrow(() -> new SdxlException(ErrorCode.NOT_FOUND, "no LoRA '" + name + "' (" + name
                            + ".safetensors) under " + loraDir));
        } catch (java.io.IOException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, "cannot search " + loraDir + ": " + e.getMessage());
        }
    }

    private Refiner openRefiner(Path model, PipelineOptions options) {
        return Files.isRegularFile(model) ? Refiner.fromSingleFile(model, config, options) : Refiner.load(model, options);
    }

    private static Path suffixed(Path p, int i) {
        String name = p.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String stem = dot > 0 ? name.substring(0, dot) : name;
        String ext = dot > 0 ? name.substring(dot) : ".png";
        return p.resolveSibling(stem + "-" + i + ext);
    }

    /** --model, else $SDXL4J_MODEL, else SDXL base in the Hugging Face cache, else the bundled test model. */
    private Path resolveModel() {
        Optional<Path> found = ModelArguments.locate(model);
        if (found.isPresent()) {
            return found.get();
        }
        Path bundled = ModelArguments.bundledModel();
        err.println("No SDXL model found (no --model, no $SDXL4J_MODEL, no " + DEFAULT_REPO + " in "
                + HuggingFaceCache.fromEnvironment().root() + ").");
        err.println("Running the small bundled TEST model: it has random weights, so it makes noise images.");
        err.println("For real images point sdxl4j at SDXL 1.0 weights:  --model /path/to/stable-diffusion-xl-base-1.0");
        err.println("  or download them once:  huggingface-cli download " + DEFAULT_REPO);
        return bundled;
    }

    private static Path resolve(String pathOrRepo) {
        return ModelArguments.resolve(pathOrRepo);
    }

    static PromptSyntax syntax(String s) {
        try {
            return PromptSyntax.valueOf(s.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "--syntax must be plain, compel or a1111, got " + s);
        }
    }


    static DType dtype(String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "fp32", "float32", "f32" -> DType.F32;
            case "fp16", "float16", "f16", "half" -> DType.F16;
            case "bf16", "bfloat16" -> DType.BF16;
            default -> throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "--dtype must be fp32, fp16 or bf16, got " + s);
        };
    }
}
