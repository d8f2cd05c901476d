package io.sdxl4j;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One call of the SDXL base pipeline ({@link StableDiffusionXL}) or refiner / img2img pipeline ({@link Refiner}):
 * the arguments of diffusers' {@code StableDiffusionXLPipeline.__call__} / {@code StableDiffusionXLImg2ImgPipeline
 * .__call__}, with the same names and defaults. Immutable; build with {@link #builder()} and copy with
 * {@link #toBuilder()}. Values are checked when a pipeline runs the request, before any model runs.
 *
 * <p>Sizes are (height, width) pairs, in that order, as in diffusers.
 */
public final class GenerationRequest {
    /** What a call returns: decoded images, or the UNet-space latents (diffusers {@code output_type="latent"}). */
    public enum Output { IMAGE, LATENT }

    private final List<String> prompt, prompt2, negativePrompt, negativePrompt2;
    private final PromptEmbeddings embeddings;
    private final PromptSyntax syntax;
    private final boolean truncateLongPrompts;
    private final int steps;
    private final Integer height, width;
    private final double guidanceScale, guidanceRescale;
    private final int imagesPerPrompt;
    private final int[] originalSize, cropsCoordsTopLeft, targetSize;
    private final int[] negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize;
    private final Double denoisingEnd, denoisingStart;
    private final double strength, aestheticScore, negativeAestheticScore;
    private final ImageInput image;
    private final float[] latents;
    private final Long seed;
    private final SchedulerKind scheduler;
    private final Map<String, Object> schedulerOverrides;
    private final double eta;
    private final Output output;
    private final Boolean watermark;

    private GenerationRequest(Builder b) {
        prompt = copy(b.prompt);
        prompt2 = copy(b.prompt2);
        negativePrompt = copy(b.negativePrompt);
        negativePrompt2 = copy(b.negativePrompt2);
        embeddings = b.embeddings;
        syntax = b.syntax;
        truncateLongPrompts = b.truncateLongPrompts;
        steps = b.steps;
        height = b.height;
        width = b.width;
        guidanceScale = b.guidanceScale;
        guidanceRescale = b.guidanceRescale;
        imagesPerPrompt = b.imagesPerPrompt;
        originalSize = clone(b.originalSize);
        cropsCoordsTopLeft = clone(b.cropsCoordsTopLeft);
        targetSize = clone(b.targetSize);
        negativeOriginalSize = clone(b.negativeOriginalSize);
        negativeCropsCoordsTopLeft = clone(b.negativeCropsCoordsTopLeft);
        negativeTargetSize = clone(b.negativeTargetSize);
        denoisingEnd = b.denoisingEnd;
        denoisingStart = b.denoisingStart;
        strength = b.strength;
        aestheticScore = b.aestheticScore;
        negativeAestheticScore = b.negativeAestheticScore;
        image = b.image;
        latents = b.latents == null ? null : b.latents.clone();
        seed = b.seed;
        scheduler = b.scheduler;
        schedulerOverrides = Collections.unmodifiableMap(new LinkedHashMap<>(b.schedulerOverrides));
        eta = b.eta;
        output = b.output;
        watermark = b.watermark;
    }

    private static List<String> copy(List<String> l) {
        return l == null ? null : Collections.unmodifiableList(new ArrayList<>(l));
    }

    private static int[] clone(int[] a) {
        return a == null ? null : a.clone();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A request with one prompt and every other value at its default. */
    public static GenerationRequest of(String prompt) {
        return builder().prompt(prompt).build();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.prompt = prompt;
        b.prompt2 = prompt2;
        b.negativePrompt = negativePrompt;
        b.negativePrompt2 = negativePrompt2;
        b.embeddings = embeddings;
        b.syntax = syntax;
        b.truncateLongPrompts = truncateLongPrompts;
        b.steps = steps;
        b.height = height;
        b.width = width;
        b.guidanceScale = guidanceScale;
        b.guidanceRescale = guidanceRescale;
        b.imagesPerPrompt = imagesPerPrompt;
        b.originalSize = originalSize;
        b.cropsCoordsTopLeft = cropsCoordsTopLeft;
        b.targetSize = targetSize;
        b.negativeOriginalSize = negativeOriginalSize;
        b.negativeCropsCoordsTopLeft = negativeCropsCoordsTopLeft;
        b.negativeTargetSize = negativeTargetSize;
        b.denoisingEnd = denoisingEnd;
        b.denoisingStart = denoisingStart;
        b.strength = strength;
        b.aestheticScore = aestheticScore;
        b.negativeAestheticScore = negativeAestheticScore;
        b.image = image;
        b.latents = latents;
        b.seed = seed;
        b.scheduler = scheduler;
        b.schedulerOverrides = new LinkedHashMap<>(schedulerOverrides);
        b.eta = eta;
        b.output = output;
        b.watermark = watermark;
        return b;
    }

    /** The prompts (one per batch item), or null when embeddings are given instead. */
    public List<String> prompt() { return prompt; }
    /** Prompts for text_encoder_2 (null: the same as {@link #prompt()}). */
    public List<String> prompt2() { return prompt2; }
    /** Negative prompts (null: none; the base then uses zero embeddings, the refiner the empty prompt). */
    public List<String> negativePrompt() { return negativePrompt; }
    public List<String> negativePrompt2() { return negativePrompt2; }
    public PromptEmbeddings embeddings() { return embeddings; }
    public PromptSyntax syntax() { return syntax; }
    public boolean truncateLongPrompts() { return truncateLongPrompts; }
    public int steps() { return steps; }
    /** Null: the UNet's sample_size x 8 (1024 for SDXL). */
    public Integer height() { return height; }
    public Integer width() { return width; }
    public double guidanceScale() { return guidanceScale; }
    public double guidanceRescale() { return guidanceRescale; }
    public int imagesPerPrompt() { return imagesPerPrompt; }
    public int[] originalSize() { return clone(originalSize); }
    public int[] cropsCoordsTopLeft() { return clone(cropsCoordsTopLeft); }
    public int[] targetSize() { return clone(targetSize); }
    public int[] negativeOriginalSize() { return clone(negativeOriginalSize); }
    public int[] negativeCropsCoordsTopLeft() { return clone(negativeCropsCoordsTopLeft); }
    public int[] negativeTargetSize() { return clone(negativeTargetSize); }
    public Double denoisingEnd() { return denoisingEnd; }
    public Double denoisingStart() { return denoisingStart; }
    public double strength() { return strength; }
    public double aestheticScore() { return aestheticScore; }
    public double negativeAestheticScore() { return negativeAestheticScore; }
    public ImageInput image() { return image; }
    /** Initial latents [B*n, 4, h, w] (before init_noise_sigma scaling) instead of drawing noise, or null. */
    public float[] latents() { return latents == null ? null : latents.clone(); }
    public Long seed() { return seed; }
    public SchedulerKind scheduler() { return scheduler; }
    public Map<String, Object> schedulerOverrides() { return schedulerOverrides; }
    public double eta() { return eta; }
    public Output output() { return output; }
    /** Null: the pipeline's setting. */
    public Boolean watermark() { return watermark; }

    /** Mutable builder; every setter returns this. Defaults are diffusers'. */
    public static final class Builder {
        private List<String> prompt, prompt2, negativePrompt, negativePrompt2;
        private PromptEmbeddings embeddings;
        private PromptSyntax syntax = PromptSyntax.PLAIN;
        private boolean truncateLongPrompts = true;
        private int steps = 50;
        private Integer height, width;
        private double guidanceScale = 5.0, guidanceRescale = 0.0;
        private int imagesPerPrompt = 1;
        private int[] originalSize, cropsCoordsTopLeft = {0, 0}, targetSize;
        private int[] negativeOriginalSize, negativeCropsCoordsTopLeft = {0, 0}, negativeTargetSize;
        private Double denoisingEnd, denoisingStart;
        private double strength = 0.3, aestheticScore = 6.0, negativeAestheticScore = 2.5;
        private ImageInput image;
        private float[] latents;
        private Long seed;
        private SchedulerKind scheduler;
        private Map<String, Object> schedulerOverrides = new LinkedHashMap<>();
        private double eta = 0.0;
        private Output output = Output.IMAGE;
        private Boolean watermark;

        private Builder() {}

        public Builder prompt(String p) { this.prompt = p == null ? null : List.of(p); return this; }
        public Builder prompts(List<String> p) { this.prompt = p; return this; }
        public Builder prompt2(String p) { this.prompt2 = p == null ? null : List.of(p); return this; }
        public Builder prompts2(List<String> p) { this.prompt2 = p; return this; }
        public Builder negativePrompt(String p) { this.negativePrompt = p == null ? null : List.of(p); return this; }
        public Builder negativePrompts(List<String> p) { this.negativePrompt = p; return this; }
        public Builder negativePrompt2(String p) { this.negativePrompt2 = p == null ? null : List.of(p); return this; }
        public Builder negativePrompts2(List<String> p) { this.negativePrompt2 = p; return this; }
        public Builder embeddings(PromptEmbeddings e) { this.embeddings = e; return this; }
        public Builder syntax(PromptSyntax s) { this.syntax = s; return this; }
        public Builder truncateLongPrompts(boolean t) { this.truncateLongPrompts = t; return this; }
        public Builder steps(int n) { this.steps = n; return this; }
        public Builder size(int height, int width) { this.height = height; this.width = width; return this; }
        public Builder height(int h) { this.height = h; return this; }
        public Builder width(int w) { this.width = w; return this; }
        public Builder guidanceScale(double g) { this.guidanceScale = g; return this; }
        public Builder guidanceRescale(double r) { this.guidanceRescale = r; return this; }
        public Builder imagesPerPrompt(int n) { this.imagesPerPrompt = n; return this; }
        public Builder originalSize(int h, int w) { this.originalSize = new int[] {h, w}; return this; }
        public Builder cropsCoordsTopLeft(int top, int left) { this.cropsCoordsTopLeft = new int[] {top, left}; return this; }
        public Builder targetSize(int h, int w) { this.targetSize = new int[] {h, w}; return this; }
        public Builder negativeOriginalSize(int h, int w) { this.negativeOriginalSize = new int[] {h, w}; return this; }
        public Builder negativeCropsCoordsTopLeft(int top, int left) { this.negativeCropsCoordsTopLeft = new int[] {top, left}; return this; }
        public Builder negativeTargetSize(int h, int w) { this.negativeTargetSize = new int[] {h, w}; return this; }
        /** Base: stop after this fraction of the schedule (ensemble of experts), in (0, 1). */
        public Builder denoisingEnd(Double f) { this.denoisingEnd = f; return this; }
        /** Refiner: start at this fraction of the schedule, in (0, 1); strength is then ignored and no noise is added. */
        public Builder denoisingStart(Double f) { this.denoisingStart = f; return this; }
        /** Refiner / img2img: how much of the schedule runs on the noised image, in (0, 1]. */
        public Builder strength(double s) { this.strength = s; return this; }
        public Builder aestheticScore(double a) { this.aestheticScore = a; return this; }
        public Builder negativeAestheticScore(double a) { this.negativeAestheticScore = a; return this; }
        public Builder image(ImageInput i) { this.image = i; return this; }
        public Builder latents(float[] l) { this.latents = l; return this; }
        /** Seed of a fresh torch-compatible generator (ignored when a Generator is passed to generate). */
        public Builder seed(Long s) { this.seed = s; return this; }
        public Builder seed(long s) { this.seed = s; return this; }
        /** Null: the model folder's scheduler_config.json as it is. */
        public Builder scheduler(SchedulerKind k) { this.scheduler = k; return this; }
        /** Extra scheduler_config keys on top of the kind's (e.g. "timestep_spacing": "trailing"). */
        public Builder schedulerOverride(String key, Object value) { this.schedulerOverrides.put(key, value); return this; }
        public Builder schedulerOverrides(Map<String, ?> m) { this.schedulerOverrides = new LinkedHashMap<>(m); return this; }
        /** DDIM's eta (0 = deterministic). */
        public Builder eta(double e) { this.eta = e; return this; }
        public Builder output(Output o) { this.output = o; return this; }
        public Builder watermark(Boolean w) { this.watermark = w; return this; }

        public GenerationRequest build() {
            return new GenerationRequest(this);
        }
    }
}
