package io.sdxl4j.springai;

import java.util.Objects;
import org.springframework.ai.image.ImageOptions;

/**
 * Spring AI's portable {@link ImageOptions} plus what SDXL takes besides: seed, steps, guidance scale, negative
 * prompt and scheduler. Every value may be null, meaning "the model's default" (the defaults it was built with,
 * then sdxl4j's). Give it to an {@link org.springframework.ai.image.ImagePrompt}; a plain {@code ImageOptions}
 * works too, for the portable values.
 *
 * <ul>
 *   <li>{@code n}: images from one seed (diffusers' {@code num_images_per_prompt});</li>
 *   <li>{@code width} / {@code height}: multiples of 8;</li>
 *   <li>{@code responseFormat}: {@code b64_json} (the only one: nothing is served at a URL);</li>
 *   <li>{@code model}: null, or the name of the loaded model (its folder or file name) as a check;</li>
 *   <li>{@code style}: not supported (SDXL has no style presets: say it in the prompt);</li>
 *   <li>{@code scheduler}: any sampler name {@link io.sdxl4j.SchedulerKind#fromName} knows ("DPM++ 2M Karras",
 *       "euler_ancestral", ...);</li>
 *   <li>{@code seed}: a fixed seed; none: a fresh random seed per call (reported in the response metadata).</li>
 * </ul>
 */
public class Sdxl4jImageOptions implements ImageOptions {
    /** The one response format served: base64 PNG in the response. */
    public static final String B64_JSON = "b64_json";

    private Integer n;
    private String model;
    private Integer width;
    private Integer height;
    private String responseFormat;
    private String style;
    private Long seed;
    private Integer steps;
    private Double guidanceScale;
    private String negativePrompt;
    private String scheduler;

    public static Builder builder() {
        return new Builder();
    }

    /** A copy with every value of {@code over} that is not null put over this one's. */
    public Sdxl4jImageOptions merge(ImageOptions over) {
        Sdxl4jImageOptions m = copy();
        if (over == null) {
            return m;
        }
        m.n = pick(over.getN(), n);
        m.model = pick(over.getModel(), model);
        m.width = pick(over.getWidth(), width);
        m.height = pick(over.getHeight(), height);
        m.responseFormat = pick(over.getResponseFormat(), responseFormat);
        m.style = pick(over.getStyle(), style);
        if (over instanceof Sdxl4jImageOptions o) {
            m.seed = pick(o.seed, seed);
            m.steps = pick(o.steps, steps);
            m.guidanceScale = pick(o.guidanceScale, guidanceScale);
            m.negativePrompt = pick(o.negativePrompt, negativePrompt);
            m.scheduler = pick(o.scheduler, scheduler);
        }
        return m;
    }

    public Sdxl4jImageOptions copy() {
        Sdxl4jImageOptions c = new Sdxl4jImageOptions();
        c.n = n;
        c.model = model;
        c.width = width;
        c.height = height;
        c.responseFormat = responseFormat;
        c.style = style;
        c.seed = seed;
        c.steps = steps;
        c.guidanceScale = guidanceScale;
        c.negativePrompt = negativePrompt;
        c.scheduler = scheduler;
        return c;
    }

    private static <T> T pick(T over, T base) {
        return over != null ? over : base;
    }

    @Override public Integer getN() { return n; }
    public void setN(Integer n) { this.n = n; }
    @Override public String getModel() { return model; }
    public void setModel(String model) { this.model = model; }
    @Override public Integer getWidth() { return width; }
    public void setWidth(Integer width) { this.width = width; }
    @Override public Integer getHeight() { return height; }
    public void setHeight(Integer height) { this.height = height; }
    @Override public String getResponseFormat() { return responseFormat; }
    public void setResponseFormat(String responseFormat) { this.responseFormat = responseFormat; }
    @Override public String getStyle() { return style; }
    public void setStyle(String style) { this.style = style; }
    public Long getSeed() { return seed; }
    public void setSeed(Long seed) { this.seed = seed; }
    public Integer getSteps() { return steps; }
    public void setSteps(Integer steps) { this.steps = steps; }
    public Double getGuidanceScale() { return guidanceScale; }
    public void setGuidanceScale(Double guidanceScale) { this.guidanceScale = guidanceScale; }
    public String getNegativePrompt() { return negativePrompt; }
    public void setNegativePrompt(String negativePrompt) { this.negativePrompt = negativePrompt; }
    public String getScheduler() { return scheduler; }
    public void setScheduler(String scheduler) { this.scheduler = scheduler; }

    @Override
    public boolean equals(Object o) {
        return o instanceof Sdxl4jImageOptions x && Objects.equals(n, x.n) && Objects.equals(model, x.model)
                && Objects.equals(width, x.width) && Objects.equals(height, x.height)
                && Objects.equals(responseFormat, x.responseFormat) && Objects.equals(style, x.style)
                && Objects.equals(seed, x.seed) && Objects.equals(steps, x.steps)
                && Objects.equals(guidanceScale, x.guidanceScale) && Objects.equals(negativePrompt, x.negativePrompt)
                && Objects.equals(scheduler, x.scheduler);
    }

    @Override
    public int hashCode() {
        return Objects.hash(n, model, width, height, responseFormat, style, seed, steps, guidanceScale, negativePrompt,
                scheduler);
    }

    @Override
    public String toString() {
        return "Sdxl4jImageOptions{n=" + n + ", model=" + model + ", width=" + width + ", height=" + height
                + ", responseFormat=" + responseFormat + ", style=" + style + ", seed=" + seed + ", steps=" + steps
                + ", guidanceScale=" + guidanceScale + ", negativePrompt=" + negativePrompt + ", scheduler="
                + scheduler + "}";
    }

    /** Fluent builder; unset values stay null. */
    public static final class Builder {
        private final Sdxl4jImageOptions o = new Sdxl4jImageOptions();

        private Builder() {}

        public Builder n(Integer n) { o.n = n; return this; }
        public Builder model(String model) { o.model = model; return this; }
        public Builder width(Integer width) { o.width = width; return this; }
        public Builder height(Integer height) { o.height = height; return this; }
        public Builder responseFormat(String format) { o.responseFormat = format; return this; }
        public Builder style(String style) { o.style = style; return this; }
        public Builder seed(Long seed) { o.seed = seed; return this; }
        public Builder steps(Integer steps) { o.steps = steps; return this; }
        public Builder guidanceScale(Double g) { o.guidanceScale = g; return this; }
        public Builder negativePrompt(String p) { o.negativePrompt = p; return this; }
        public Builder scheduler(String name) { o.scheduler = name; return this; }

        public Sdxl4jImageOptions build() {
            return o.copy();
        }
    }
}
