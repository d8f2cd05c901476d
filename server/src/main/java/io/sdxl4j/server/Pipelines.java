package io.sdxl4j.server;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.Generator;
import io.sdxl4j.ImageInput;
import io.sdxl4j.LoraMode;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.Refiner;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import io.sdxl4j.images.GenerationParameters;
import io.sdxl4j.images.Images;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The loaded models and the one way they are run for both APIs: the base pipeline, an optional refiner (sharing the
 * base's text_encoder_2 and VAE, as in the seed walkthrough) and, on first use, an image-to-image pipeline on the
 * base model (the CLI's {@code --init-image} without {@code --refiner}). Every call is the Java API's, so the same
 * seed gives the same image as {@code StableDiffusionXL.generate} and the CLI. Only the queue's worker thread calls
 * {@link #generate}.
 */
final class Pipelines implements AutoCloseable {
    private final Path modelPath;
    private final StableDiffusionXL base;
    private final Refiner refiner;
    private Refiner img2img;  // over the base's models, made on first use by the worker thread
    private final LoraLibrary loraLibrary;  // null: no --lora-dir
    private final String modelName;
    private final String modelHash;
    private final String refinerName;
    final long loadedAtSeconds = System.currentTimeMillis() / 1000;

    /** The images of one request, and whether /sdapi/v1/interrupt stopped it before all were made. */
    record Batch(List<GeneratedImage> images, boolean interrupted) {}

    Pipelines(Path model, Path refinerPath, Path configFolder, PipelineOptions options, Path loraDir) {
        this.modelPath = model;
        this.loraLibrary = loraDir == null ? null : new LoraLibrary(loraDir);
        this.base = Files.isRegularFile(model) ? StableDiffusionXL.fromSingleFile(model, configFolder, options)
                : StableDiffusionXL.load(model, options);
        try {
            this.refiner = refinerPath == null ? null : base.loadRefiner(refinerPath, options);
            this.modelHash = base.modelHash();  // single files only: read once now, not during a request
        } catch (RuntimeException e) {
            base.close();
            throw e;
        }
        this.modelName = nameOf(model);
        this.refinerName = refinerPath == null ? null : nameOf(refinerPath);
    }

    /** A1111 names a checkpoint by its file name without the extension; a folder by its name. */
    static String nameOf(Path model) {
        String name = model.toAbsolutePath().normalize().getFileName().toString();
        int dot = name.lastIndexOf('.');
        return Files.isRegularFile(model) && dot > 0 ? name.substring(0, dot) : name;
    }

    String modelName() {
        return modelName;
    }

    /** The file name of a single-file checkpoint (never its full path), or the folder's name. */
    String modelFileName() {
        return modelPath.toAbsolutePath().normalize().getFileName().toString();
    }

    /** A1111's short hash of a single-file checkpoint, or null for a diffusers folder. */
    String modelHash() {
        return modelHash;
    }

    String refinerName() {
        return refinerName;
    }

    boolean hasRefiner() {
        return refiner != null;
    }

    /** The folder prompt LoRA tags are looked up in, or null. */
    LoraLibrary loraLibrary() {
        return loraLibrary;
    }

    /** The size a request gets when it names none (1024 for SDXL). */
    int defaultSize() {
        return base.defaultSize();
    }

    /** The Java API request for image {@code i} of {@code spec} (seed {@code spec.seed() + i}). */
    static GenerationRequest request(ImageSpec spec, int i) {
        GenerationRequest.Builder b = GenerationRequest.builder().prompt(spec.prompt()).negativePrompt(spec.negativePrompt())
                .syntax(spec.syntax()).steps(spec.steps()).guidanceScale(spec.guidanceScale()).seed(spec.seed() + i).scheduler(spec.scheduler())
                .eta(spec.eta());
        if (!spec.img2img()) {
            b.size(spec.height(), spec.width());
        }
        return b.build();
    }

    /**
     * Runs {@code spec} on the worker thread; image by image so that each has its own seed. The request's LoRAs are
     * applied unfused (run-time adapters beside the unchanged weights: quick to add and take away) for this request
     * only, on the base's models (which image to image shares); the refiner's UNet gets none, but its
     * text_encoder_2 is the base's, so a LoRA's text-encoder part reaches it too (as with the CLI's --lora).
     */
    Batch generate(ImageSpec spec, JobQueue.Job<?> job) {
        if (spec.loras().isEmpty()) {
            return generateImages(spec, job);
        }
        try {
            for (ImageSpec.LoraUse l : spec.loras()) {
                try {
                    base.loadLora(l.file(), l.weight(), LoraMode.UNFUSED);
                } catch (SdxlException e) {  // a file of the folder that is no LoRA for this model: the request's
                    throw ApiException.badRequest("prompt", "the LoRA \"" + l.name() + "\" cannot be used: " + e.getMessage());
                }
            }
            return generateImages(spec, job);
        } finally {
            base.unloadLoras();
        }
    }

    private Batch generateImages(ImageSpec spec, JobQueue.Job<?> job) {
        List<GeneratedImage> out = new ArrayList<>();
        for (int i = 0; i < spec.count(); i++) {
            job.startImage(i, spec.count(), spec.height(), spec.width());
            try {
                out.add(one(spec, i, job));
            } catch (SdxlException e) {
                if (e.code() == ErrorCode.CANCELLED && job.cancelled() == JobQueue.Reason.INTERRUPTED) {
                    return new Batch(out, true);  // A1111: an interrupt keeps what was finished
                }
                throw e;
            }
        }
        return new Batch(out, false);
    }

    private GeneratedImage one(ImageSpec spec, int i, JobQueue.Job<?> job) {
        GenerationRequest request = request(spec, i);
        long seed = request.seed();
        GenerationResult result;
        boolean refined = false;
        try (Generator g = Generator.seeded(seed)) {
            if (spec.img2img()) {
                BufferedImage init = spec.initImages().get(i % spec.initImages().size());
                if (spec.resize() && (init.getWidth() != spec.width() || init.getHeight() != spec.height())) {
                    init = Images.resizeLanczos(Images.toRgb(init), spec.width(), spec.height());
                }
                int[] hw = new int[2];
                ImageInput image = ImageInput.pixels(Images.preprocess(init, hw), 1, hw[0], hw[1]);
                GenerationRequest r = request.toBuilder().image(image).strength(spec.strength()).build();
                result = img2img().generate(r, g, job::onStep, job.token);
            } else if (spec.useRefiner() && refiner != null) {
                // The CLI's ensemble of experts: the base until the switch, the refiner after it, one generator.
                GenerationResult latents = base.generate(request.toBuilder().denoisingEnd(spec.refinerSwitchAt())
                        .output(GenerationRequest.Output.LATENT).build(), g, job::onStep, job.token);
                long[] s = latents.latentShape();
                GenerationRequest refine = GenerationRequest.builder().prompt(spec.prompt())
                        .negativePrompt(spec.negativePrompt()).syntax(spec.syntax()).steps(spec.steps()).guidanceScale(spec.guidanceScale())
                        .seed(seed).scheduler(spec.scheduler()).eta(spec.eta())
                        .image(ImageInput.latents(latents.latents(), (int) s[0], (int) s[1], (int) s[2], (int) s[3]))
                        .denoisingStart(spec.refinerSwitchAt()).build();
                result = refiner.generate(refine, g, job::onStep, job.token);
                refined = true;
            } else {
                result = base.generate(request, g, job::onStep, job.token);
            }
        }
        GenerationParameters.Builder p = result.parametersBuilder(0).model(modelName);
        if (!spec.loras().isEmpty()) {
            p.prompt(spec.promptAsWritten());  // A1111 records the prompt as written, tags included
            p.extra("Lora hashes", base.loraHashes());
        }
        if (modelHash != null) {
            p.modelHash(modelHash);
        }
        if (refined) {
            p.refiner(refinerName).refinerSwitchAt(spec.refinerSwitchAt());
        }
        String infotext = p.build().toInfotext();
        return new GeneratedImage(Png.encode(result.image(0), infotext), infotext, seed, result.width(), result.height());
    }

    private Refiner img2img() {
        if (img2img == null) {
            img2img = Refiner.fromPipe(base);  // the base's models: no second copy
        }
        return img2img;
    }

    @Override
    public void close() {
        if (img2img != null) {
            img2img.close();
        }
        if (refiner != null) {
            refiner.close();
        }
        base.close();
    }
}
