package io.sdxl4j.springai;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import org.springframework.ai.image.Image;
import org.springframework.ai.image.ImageGeneration;
import org.springframework.ai.image.ImageMessage;
import org.springframework.ai.image.ImageModel;
import org.springframework.ai.image.ImagePrompt;
import org.springframework.ai.image.ImageResponse;
import org.springframework.ai.image.ImageResponseMetadata;

/**
 * Spring AI's {@link ImageModel} on an sdxl4j pipeline, in process: text to image on the SDXL base pipeline. Each
 * call's options ({@link Sdxl4jImageOptions}, or any {@link org.springframework.ai.image.ImageOptions} for the
 * portable values) go over the defaults the model was built with; the images come back as base64 PNGs
 * ({@link Image#getB64Json()}) carrying AUTOMATIC1111's {@code parameters} text chunk, the same bytes as the Java
 * API's {@link GenerationResult#pngBytes} for the same seed. Each generation's metadata is a
 * {@link Sdxl4jGenerationMetadata} (seed and infotext); the response metadata holds {@code "seed"}.
 *
 * <p>The prompt: the messages' texts joined with ", ", except that messages of negative weight go to the negative
 * prompt (after the options' negative prompt), as Stability AI's weighted prompts do; other weights are not used.
 * Messages carrying media (image inputs) are refused: this model does text to image only.
 *
 * <p>Bad values are refused with an {@link SdxlException} naming the option before any model runs: INVALID_ARGUMENT,
 * or UNSUPPORTED for what is valid in Spring AI but not done here (the {@code url} response format, a style, image
 * inputs). Safe to call from several threads. {@link #close()} closes the pipeline when this model loaded it.
 */
public final class Sdxl4jImageModel implements ImageModel, AutoCloseable {
    private final StableDiffusionXL pipeline;
    private final boolean ownsPipeline;
    private final Sdxl4jImageOptions defaults;
    private final String modelName;
    private final SecureRandom random = new SecureRandom();

    /**
     * A model on a pipeline loaded elsewhere (left open by {@link #close()}).
     *
     * @param defaults the values calls do not set; null for sdxl4j's
     * @throws SdxlException INVALID_ARGUMENT for a bad default
     */
    public Sdxl4jImageModel(StableDiffusionXL pipeline, Sdxl4jImageOptions defaults) {
        this(pipeline, false, defaults);
    }

    private Sdxl4jImageModel(StableDiffusionXL pipeline, boolean ownsPipeline, Sdxl4jImageOptions defaults) {
        if (pipeline == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the pipeline must not be null");
        }
        this.pipeline = pipeline;
        this.ownsPipeline = ownsPipeline;
        this.defaults = defaults == null ? new Sdxl4jImageOptions() : defaults.copy();
        Path source = pipeline.singleFile() != null ? pipeline.singleFile() : pipeline.folder();
        this.modelName = source.getFileName().toString();
        request(List.of("check"), List.of(), this.defaults);  // a bad default fails here, not at the first call
    }

    /**
     * Loads the model (a diffusers folder or a single-file checkpoint) and owns it: {@link #close()} releases it.
     * A bad default is reported before the model loads.
     */
    public static Sdxl4jImageModel load(Path model, PipelineOptions options, Sdxl4jImageOptions defaults) {
        if (model == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the model path must not be null");
        }
        Sdxl4jImageOptions checked = defaults == null ? new Sdxl4jImageOptions() : defaults.copy();
        checked.setModel(null);  // the name check needs the loaded model; everything else is checked now
        request(List.of("check"), List.of(), checked, null);
        StableDiffusionXL pipeline = StableDiffusionXL.load(model, options == null ? PipelineOptions.defaults() : options);
        try {
            return new Sdxl4jImageModel(pipeline, true, defaults);
        } catch (RuntimeException e) {
            pipeline.close();
            throw e;
        }
    }

    /** The base pipeline this model generates with. */
    public StableDiffusionXL pipeline() {
        return pipeline;
    }

    /** The name {@code model} options must match: the model folder's or checkpoint file's name. */
    public String modelName() {
        return modelName;
    }

    /** A copy of the defaults calls start from. */
    public Sdxl4jImageOptions defaults() {
        return defaults.copy();
    }

    @Override
    public ImageResponse call(ImagePrompt prompt) {
        if (prompt == null) {
            throw bad("the image prompt must not be null");
        }
        List<String> positive = new ArrayList<>();
        List<String> negative = new ArrayList<>();
        List<ImageMessage> messages = prompt.getInstructions() == null ? List.of() : prompt.getInstructions();
        for (ImageMessage m : messages) {
            if (m == null || m.getText() == null) {
                throw bad("an image message has no text");
            }
            if (m.getMedia() != null && !m.getMedia().isEmpty()) {
                throw unsupported("image inputs (message media) are not supported: this model does text to image; "
                        + "use the sdxl4j Java API's Refiner (or sdxl4j-langchain4j's edit) for image to image");
            }
            (m.getWeight() != null && m.getWeight() < 0 ? negative : positive).add(m.getText());
        }
        Sdxl4jImageOptions options = defaults.merge(prompt.getOptions());
        GenerationRequest request = request(positive, negative, options);
        GenerationResult result = pipeline.generate(request);

        Base64.Encoder base64 = Base64.getEncoder();
        List<ImageGeneration> generations = new ArrayList<>(result.count());
        for (int i = 0; i < result.count(); i++) {
            generations.add(new ImageGeneration(new Image(null, base64.encodeToString(result.pngBytes(i))),
                    new Sdxl4jGenerationMetadata(result.seed(), result.parameters(i).toInfotext())));
        }
        ImageResponseMetadata metadata = new ImageResponseMetadata();
        metadata.put("seed", result.seed());
        metadata.put("model", modelName);
        return new ImageResponse(generations, metadata);
    }

    @Override
    public void close() {
        if (ownsPipeline) {
            pipeline.close();
        }
    }

    private GenerationRequest request(List<String> positive, List<String> negative, Sdxl4jImageOptions o) {
        return request(positive, negative, o, this);
    }

    /** The Java API request for the options; every check that needs no model. {@code model}: for the name check. */
    private static GenerationRequest request(List<String> positive, List<String> negative, Sdxl4jImageOptions o,
                                             Sdxl4jImageModel model) {
        if (positive.isEmpty()) {
            throw bad("the image prompt has no text (messages of negative weight are the negative prompt)");
        }
        String format = o.getResponseFormat();
        if (format != null && format.equalsIgnoreCase("url")) {
            throw unsupported("responseFormat \"url\" is not served: sdxl4j returns the images in the response; use "
                    + "\"b64_json\"");
        }
        if (format != null && !format.equalsIgnoreCase(Sdxl4jImageOptions.B64_JSON)) {
            throw bad("responseFormat \"" + format + "\" is not known; use \"b64_json\"");
        }
        if (o.getModel() != null && !o.getModel().isBlank() && model != null && !model.matches(o.getModel())) {
            throw bad("model \"" + o.getModel() + "\" is not loaded; this ImageModel serves \"" + model.modelName + "\"");
        }
        if (o.getStyle() != null && !o.getStyle().isBlank()) {
            throw unsupported("style \"" + o.getStyle() + "\" is not supported: SDXL has no style presets; describe "
                    + "the style in the prompt");
        }
        GenerationRequest.Builder b = GenerationRequest.builder().prompt(String.join(", ", positive));
        if (o.getN() != null) {
            if (o.getN() < 1) {
                throw bad("n must be at least 1, got " + o.getN());
            }
            b.imagesPerPrompt(o.getN());
        }
        if (o.getWidth() != null) {
            b.width(dimension("width", o.getWidth()));
        }
        if (o.getHeight() != null) {
            b.height(dimension("height", o.getHeight()));
        }
        if (o.getSteps() != null) {
            if (o.getSteps() < 1) {
                throw bad("steps must be at least 1, got " + o.getSteps());
            }
            b.steps(o.getSteps());
        }
        if (o.getGuidanceScale() != null) {
            if (!Double.isFinite(o.getGuidanceScale())) {
                throw bad("guidanceScale must be a finite number, got " + o.getGuidanceScale());
            }
            b.guidanceScale(o.getGuidanceScale());
        }
        List<String> negatives = new ArrayList<>();
        if (o.getNegativePrompt() != null && !o.getNegativePrompt().isEmpty()) {
            negatives.add(o.getNegativePrompt());
        }
        negatives.addAll(negative);
        if (!negatives.isEmpty()) {
            b.negativePrompt(String.join(", ", negatives));
        }
        if (o.getScheduler() != null && !o.getScheduler().isBlank()) {
            b.scheduler(SchedulerKind.fromName(o.getScheduler()));  // INVALID_ARGUMENT listing the known names
        }
        if (model != null) {
            b.seed(o.getSeed() != null ? o.getSeed() : model.random.nextLong() & Long.MAX_VALUE);
        }
        return b.build();
    }

    private boolean matches(String name) {
        String n = name.trim();
        return n.equalsIgnoreCase(modelName) || n.equalsIgnoreCase(stem(modelName));
    }

    private static String stem(String fileName) {
        String lower = fileName.toLowerCase(Locale.ROOT);
        return lower.endsWith(".safetensors") ? fileName.substring(0, fileName.length() - ".safetensors".length())
                : fileName;
    }

    private static int dimension(String name, int value) {
        if (value <= 0 || value % 8 != 0) {
            throw bad(name + " must be a positive multiple of 8, got " + value);
        }
        return value;
    }

    private static SdxlException bad(String message) {
        return new SdxlException(ErrorCode.INVALID_ARGUMENT, message);
    }

    private static SdxlException unsupported(String message) {
        return new SdxlException(ErrorCode.UNSUPPORTED, message);
    }
}
