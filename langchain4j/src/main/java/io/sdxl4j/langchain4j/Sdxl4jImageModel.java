package io.sdxl4j.langchain4j;

import dev.langchain4j.data.image.Image;
import dev.langchain4j.model.image.ImageModel;
import dev.langchain4j.model.output.Response;
import io.sdxl4j.DType;
import io.sdxl4j.Device;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.ImageInput;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.Refiner;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import io.sdxl4j.images.Images;
import java.awt.image.BufferedImage;
import java.net.URI;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * LangChain4j's {@link ImageModel} on an sdxl4j pipeline, in process: {@link #generate(String)} and
 * {@link #generate(String, int)} are text to image on the base pipeline, {@link #edit(Image, String)} is image to
 * image (SDEdit with {@link Builder#strength}) on the same model's loaded weights (or another model, if named).
 * Images come back as base64 PNGs ({@code image/png}) carrying AUTOMATIC1111's {@code parameters} text chunk, the
 * same bytes as {@link GenerationResult#pngBytes}; the response metadata holds the seed ({@code "seed"}) and the
 * infotexts ({@code "parameters"}, one per image). {@code revisedPrompt} stays null: the prompt is used as given.
 *
 * <pre>{@code
 * try (Sdxl4jImageModel model = Sdxl4jImageModel.builder().modelPath(Path.of("sdxl-base-1.0"))
 *         .steps(30).size(1024, 1024).scheduler("DPM++ 2M Karras").seed(42L).build()) {
 *     Response<Image> r = model.generate("a lighthouse at dawn, oil painting");
 *     byte[] png = Base64.getDecoder().decode(r.content().base64Data());
 * }
 * }</pre>
 *
 * <p>Seeds: with {@link Builder#seed(Long)} every call uses that seed (the same prompt gives the same image, equal to
 * the Java API's for the same request); without it each call draws a fresh random seed, reported in the metadata.
 * {@code generate(prompt, n)} draws n different images from one seed, as diffusers' {@code num_images_per_prompt}.
 *
 * <p>Errors are {@link SdxlException}s with their {@link ErrorCode}: INVALID_ARGUMENT for bad arguments (raised before
 * any model runs), UNSUPPORTED for an image at a remote URL (nothing is downloaded). Inpainting
 * ({@link #edit(Image, Image, String)}) is not supported and says so with an {@link IllegalArgumentException}, as the
 * interface documents for unsupported operations. Safe to call from several threads. Close it to release the
 * pipelines it loaded (a pipeline handed to {@link Builder#pipeline} stays open).
 */
public final class Sdxl4jImageModel implements ImageModel, AutoCloseable {
    /** The MIME type of every image this model returns. */
    public static final String MIME_TYPE = "image/png";

    private final StableDiffusionXL pipeline;
    private final boolean ownsPipeline;
    private final Path img2imgModel;  // null: edit on the base pipeline's models
    private final PipelineOptions options;
    private final GenerationRequest defaults;      // steps, guidance, scheduler, negative prompt, strength
    private final Integer width, height;           // text to image only: img2img keeps the picture's size
    private final Long seed;
    private final SecureRandom random = new SecureRandom();
    private Refiner img2img;  // loaded on the first edit; guarded by this
    private boolean closed;   // guarded by this

    private Sdxl4jImageModel(Builder b, StableDiffusionXL pipeline, boolean ownsPipeline, Path img2imgModel,
                             GenerationRequest defaults) {
        this.pipeline = pipeline;
        this.ownsPipeline = ownsPipeline;
        this.img2imgModel = img2imgModel;
        this.options = b.options;
        this.defaults = defaults;
        this.width = b.width;
        this.height = b.height;
        this.seed = b.seed;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The base pipeline this model generates with. */
    public StableDiffusionXL pipeline() {
        return pipeline;
    }

    @Override
    public Response<Image> generate(String prompt) {
        Response<List<Image>> r = generate(prompt, 1);
        return Response.from(r.content().get(0), null, null, r.metadata());
    }

    /** n images from one seed (n different images: one latent draw of batch n). */
    @Override
    public Response<List<Image>> generate(String prompt, int n) {
        GenerationRequest.Builder request = defaults.toBuilder().prompt(requirePrompt(prompt)).imagesPerPrompt(n)
                .seed(nextSeed());
        if (width != null) {
            request.size(height, width);
        }
        return response(pipeline.generate(request.build()));
    }

    /**
     * Image to image: the picture (base64 data, or a {@code data:} or {@code file:} URL; nothing is downloaded) is
     * resized down to a multiple of 8 as diffusers does, noised to {@link Builder#strength} and denoised following the
     * prompt, at the picture's size. It runs on the base pipeline's own models ({@code Refiner.fromPipe}: no second
     * copy), or on the {@link Builder#img2imgModelPath} model, loaded on the first call.
     */
    @Override
    public Response<Image> edit(Image image, String prompt) {
        if (image == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "edit needs an image");
        }
        int[] hw = new int[2];
        float[] pixels = Images.preprocess(decode(image), hw);
        GenerationRequest request = defaults.toBuilder().prompt(requirePrompt(prompt))
                .image(ImageInput.pixels(pixels, 1, hw[0], hw[1])).seed(nextSeed()).build();
        GenerationResult result = img2img().generate(request);
        Response<List<Image>> r = response(result);
        return Response.from(r.content().get(0), null, null, r.metadata());
    }

    /** Not supported: sdxl4j has no inpainting pipeline. */
    @Override
    public Response<Image> edit(Image image, Image mask, String prompt) {
        throw new IllegalArgumentException("sdxl4j does not support inpainting (edit with a mask); "
                + "use edit(image, prompt) for image to image over the whole picture");
    }

    @Override
    public void close() {
        Refiner r;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            r = img2img;
            img2img = null;
        }
        try {
            if (r != null) {
                r.close();
            }
        } finally {
            if (ownsPipeline) {
                pipeline.close();
            }
        }
    }

    private synchronized Refiner img2img() {
        if (closed) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the image model is closed");
        }
        if (img2img == null) {
            // The base's own models (no second copy), unless another model was named for editing.
            img2img = img2imgModel == null ? Refiner.fromPipe(pipeline) : Refiner.load(img2imgModel, options);
        }
        return img2img;
    }

    private long nextSeed() {
        return seed != null ? seed : random.nextLong() & Long.MAX_VALUE;
    }

    private static String requirePrompt(String prompt) {
        if (prompt == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the prompt is null");
        }
        return prompt;
    }

    private static Response<List<Image>> response(GenerationResult result) {
        List<Image> images = new ArrayList<>(result.count());
        List<String> parameters = new ArrayList<>(result.count());
        Base64.Encoder base64 = Base64.getEncoder();
        for (int i = 0; i < result.count(); i++) {
            images.add(Image.builder().base64Data(base64.encodeToString(result.pngBytes(i))).mimeType(MIME_TYPE)
                    .build());
            parameters.add(result.parameters(i).toInfotext());
        }
        Map<String, Object> metadata = new LinkedHashMap<>();
        metadata.put("seed", result.seed());
        metadata.put("parameters", parameters);
        return Response.from(images, null, null, metadata);
    }

    private static BufferedImage decode(Image image) {
        if (image.base64Data() != null) {
            return Images.read(base64(image.base64Data(), "the image's base64 data"), "the image to edit");
        }
        URI url = image.url();
        if (url == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the image to edit has neither base64 data nor a URL");
        }
        String scheme = url.getScheme() == null ? "" : url.getScheme().toLowerCase(Locale.ROOT);
        if (scheme.equals("file")) {
            return Images.read(Path.of(url));
        }
        if (scheme.equals("data")) {
            String s = url.getSchemeSpecificPart();
            int comma = s.indexOf(',');
            if (comma < 0 || !s.substring(0, comma).endsWith(";base64")) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                        "a data: URL of an image must be base64 (data:image/png;base64,...)");
            }
            return Images.read(base64(s.substring(comma + 1), "the data: URL"), "the image to edit");
        }
        throw new SdxlException(ErrorCode.UNSUPPORTED, "the image to edit is at " + url.getScheme()
                + ": URL; sdxl4j downloads nothing: pass base64 data, a data: URL or a file: URL");
    }

    private static byte[] base64(String data, String what) {
        try {
            return Base64.getMimeDecoder().decode(data);
        } catch (IllegalArgumentException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, what + " is not valid base64: " + e.getMessage(), e);
        }
    }

    /**
     * Builder: the model ({@link #modelPath} or a loaded {@link #pipeline}), how it loads ({@link #options} or
     * {@link #device} / {@link #dtype}) and the defaults every call uses. Values are checked in {@link #build()}.
     */
    public static final class Builder {
        private Path modelPath;
        private StableDiffusionXL pipeline;
        private Path img2imgModelPath;
        private PipelineOptions options = PipelineOptions.defaults();
        private int steps = 30;
        private double guidanceScale = 5.0;
        private Integer width, height;
        private SchedulerKind scheduler;
        private String negativePrompt;
        private Long seed;
        private double strength = 0.3;

        private Builder() {}

        /** A diffusers folder or a single-file {@code .safetensors} checkpoint; loaded by {@link #build()}. */
        public Builder modelPath(Path path) { this.modelPath = path; return this; }
        /** A pipeline loaded elsewhere (shared with other users; {@link #close()} leaves it open). */
        public Builder pipeline(StableDiffusionXL p) { this.pipeline = p; return this; }
        /** Another model for {@link #edit(Image, String)} (a diffusers folder; default: the base pipeline's own models). */
        public Builder img2imgModelPath(Path path) { this.img2imgModelPath = path; return this; }
        /** How the pipelines load (variant, device, dtype, watermark, offload, VAE tiling). */
        public Builder options(PipelineOptions o) { this.options = o; return this; }
        public Builder device(Device d) { this.options = options.withDevice(d); return this; }
        public Builder dtype(DType t) { this.options = options.withDtype(t); return this; }
        /** Denoising steps (default 30). */
        public Builder steps(int n) { this.steps = n; return this; }
        /** Classifier-free guidance scale (default 5.0, diffusers'). */
        public Builder guidanceScale(double g) { this.guidanceScale = g; return this; }
        /** Output size of text to image (default: the model's, 1024x1024 for SDXL); multiples of 8. */
        public Builder size(int width, int height) { this.width = width; this.height = height; return this; }
        public Builder scheduler(SchedulerKind k) { this.scheduler = k; return this; }
        /** A sampler by any name {@link SchedulerKind#fromName} knows ("DPM++ 2M Karras", "dpmpp_2m", ...). */
        public Builder scheduler(String name) {
            this.scheduler = name == null ? null : SchedulerKind.fromName(name);
            return this;
        }
        public Builder negativePrompt(String p) { this.negativePrompt = p; return this; }
        /** A fixed seed for every call, or null (the default) for a fresh random seed per call. */
        public Builder seed(Long s) { this.seed = s; return this; }
        /** How much of the schedule image to image runs, in (0, 1] (default 0.3, diffusers'). */
        public Builder strength(double s) { this.strength = s; return this; }

        /**
         * Checks the values and loads the pipeline (when a path was given).
         *
         * @throws SdxlException INVALID_ARGUMENT naming the bad value; what loading throws (NOT_FOUND, BAD_MODEL_FILE)
         */
        public Sdxl4jImageModel build() {
            if ((modelPath == null) == (pipeline == null)) {
                throw bad("give exactly one of modelPath and pipeline");
            }
            if (options == null) {
                throw bad("options must not be null");
            }
            if (steps < 1) {
                throw bad("steps must be at least 1, got " + steps);
            }
            if (!Double.isFinite(guidanceScale)) {
                throw bad("guidanceScale must be a finite number, got " + guidanceScale);
            }
            if (width != null && (width <= 0 || height <= 0 || width % 8 != 0 || height % 8 != 0)) {
                throw bad("size must be positive multiples of 8, got " + width + "x" + height);
            }
            if (!(strength > 0 && strength <= 1)) {
                throw bad("strength must be in (0, 1], got " + strength);
            }
            GenerationRequest d = GenerationRequest.builder().steps(steps).guidanceScale(guidanceScale)
                    .negativePrompt(negativePrompt).scheduler(scheduler).strength(strength).build();
            StableDiffusionXL base = pipeline != null ? pipeline : StableDiffusionXL.load(modelPath, options);
            return new Sdxl4jImageModel(this, base, pipeline == null, img2imgModelPath, d);
        }

        private static SdxlException bad(String message) {
            return new SdxlException(ErrorCode.INVALID_ARGUMENT, message);
        }
    }
}
